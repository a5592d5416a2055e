package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

func TestVersionSaysWhatTheBinaryIs(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if line := out.String(); !strings.HasPrefix(line, "tollgate ") || !strings.Contains(line, runtime.Version()) {
		t.Fatalf("tollgate version: %q", line)
	}
	out.Reset()
	if err := run(t.Context(), []string{"version", "-o", "json"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v["version"] == "" || v["go"] != runtime.Version() {
		t.Fatalf("tollgate version -o json: %s (%v)", out.String(), err)
	}
	if err := run(t.Context(), []string{"version", "-o", "yaml"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-o") {
		t.Fatalf("-o yaml: %v, want an error naming -o", err)
	}
}

// A node built from this checkout says its revision in tollgate_build_info
// and its version in the cluster view.
func TestANodeSaysItsBuild(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a real process")
	}
	p := startServe(t, "e2e-version")
	resp, err := http.Get("http://" + p.apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `tollgate_build_info{goversion="`+runtime.Version()+`"`) {
		t.Fatalf("no tollgate_build_info with this Go in /metrics")
	}
	var cv struct {
		Members []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"members"`
	}
	if err := callAdmin(p.apiAddr, "GET", "/v1/cluster", "", &cv); err != nil {
		t.Fatal(err)
	}
	if len(cv.Members) != 1 || cv.Members[0].Version == "" {
		t.Fatalf("/v1/cluster members: %+v, want one with its version", cv.Members)
	}
}
