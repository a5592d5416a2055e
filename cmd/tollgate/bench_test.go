package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/bench"
)

// fakeCheckAPI answers /v1/check, admitting every other check.
func fakeCheckAPI(t *testing.T) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, `{"allowed":%t,"limits":[],"owner":"fake"}`, n.Add(1)%2 == 0)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBenchGatesExitOneOnAViolationAndWriteReports(t *testing.T) {
	t.Parallel()
	api := fakeCheckAPI(t)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	args := func(slo string) []string {
		return []string{"--scenario", "check-http", "--targets", strings.TrimPrefix(api.URL, "http://"), "--rate", "200",
			"--duration", "500ms", "--quiet", "--slo", slo, "--slo", "error-rate=0%", "--json", jsonPath, "--html", htmlPath}
	}
	var out strings.Builder
	if err := run(t.Context(), append([]string{"bench"}, args("p99=1h")...), env(nil), &out, io.Discard); err != nil {
		t.Fatalf("gates that hold: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "p99") {
		t.Fatalf("no table: %s", out.String())
	}
	var rep bench.Report
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &rep); err != nil || json.Unmarshal(raw, &fields) != nil {
		t.Fatalf("JSON report: %v", err)
	}
	for _, k := range []string{"latency", "timeline", "distribution", "accuracy", "slos", "achieved_rate", "errors_by_kind"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
	if rep.Requests != 100 || rep.Allowed != 50 || rep.Denied != 50 || !rep.Passed {
		t.Fatalf("report: %d requests, %d allowed, %d denied, passed %v", rep.Requests, rep.Allowed, rep.Denied, rep.Passed)
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("HTML report without a chart: %v", err)
	}

	out.Reset()
	err = run(t.Context(), append([]string{"bench"}, args("p99=1ns")...), env(nil), &out, io.Discard)
	if !errors.Is(err, errSLO) || !strings.Contains(out.String(), "VIOLATED") {
		t.Fatalf("a p99 of 1ns must fail the run: %v\n%s", err, out.String())
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--scenario", "ping", "--targets", "x:1"},
		{"--targets", "x:1", "--slo", "p99=fast"},
		{"--targets", "x:1", "--chaos", "kill@1s"},
		{},
	} {
		if err := run(t.Context(), append([]string{"bench"}, args...), env(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}
