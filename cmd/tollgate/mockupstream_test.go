package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMockUpstreamServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, printed := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runMockUpstream(ctx, []string{"--addr", "127.0.0.1:0", "--completion-tokens", "3"},
			env(map[string]string{"TOLLGATE_MOCK_API_KEY": "sk-env"}), printed, io.Discard)
		printed.Close() // a failure before the address line ends the read below
		done <- err
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "mock upstream listening on ")
	if err != nil || !ok || strings.HasSuffix(url, ":0") {
		cancel()
		t.Fatalf("printed %q (%v), want the address it listens on; run: %v", line, err, <-done)
	}

	chat := func(key string) (int, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", url+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if status, b := chat("sk-wrong"); status != http.StatusUnauthorized {
		t.Errorf("wrong key: status %d: %s; want 401, the key from the environment", status, b)
	}
	status, b := chat("sk-env")
	var answer struct {
		Usage map[string]int `json:"usage"`
	}
	if err := json.Unmarshal(b, &answer); status != http.StatusOK || err != nil || answer.Usage["completion_tokens"] != 3 {
		t.Errorf("status %d: %s; want 200 with 3 completion tokens", status, b)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after cancel")
	}
}

func TestMockUpstreamBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--error-rate", "2"}, "error-rate"},
		{[]string{"--latency", "-1s"}, "latency"},
		{[]string{"--chunk-delay", "-1ms"}, "chunk-delay"},
		{[]string{"--completion-tokens", "0"}, "completion-tokens"},
		{[]string{"--completion-tokens", "-5"}, "completion-tokens"},
		{[]string{"--addr", "127.0.0.1"}, "addr"},
		{[]string{"stray"}, "stray"},
	} {
		var stderr bytes.Buffer
		err := runMockUpstream(t.Context(), tc.args, env(map[string]string{"TOLLGATE_MOCK_API_KEY": ""}), io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestMockUpstreamHelpHidesTheKey(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	err := runMockUpstream(t.Context(), []string{"-h"}, env(map[string]string{"TOLLGATE_MOCK_API_KEY": "sk-env-secret"}), io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-error-rate") {
		t.Fatalf("-h: %v, printed %q; want the flags and flag.ErrHelp", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "sk-env-secret") {
		t.Errorf("-h printed the key from the environment: %s", stderr.String())
	}
}
