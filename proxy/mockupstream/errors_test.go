package mockupstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestErrorRate(t *testing.T) {
	t.Parallel()
	failing, url := start(t, Options{ErrorRate: 1})
	for _, req := range [][2]string{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/completions", `{"model":"m","prompt":"hi"}`},
		{"/v1/embeddings", `{"model":"m","input":"hi"}`},
	} {
		status, b := do(t, "POST", url+req[0], req[1])
		e := checkError(t, status, http.StatusInternalServerError, b, "server_error", nil)
		if e["message"] != "mock upstream: injected failure" || e["code"] != nil {
			t.Errorf("%s: answer %s, want the injected failure", req[0], b)
		}
	}
	if got := failing.Reported(); got != (Usage{}) {
		t.Errorf("Reported() = %+v after failures only, want none", got)
	}

	_, url = start(t, Options{ErrorRate: 0})
	for range 50 {
		if status, b := do(t, "POST", url+"/v1/completions", `{"model":"m","prompt":"hi"}`); status != http.StatusOK {
			t.Fatalf("ErrorRate 0: status %d: %s", status, b)
		}
	}
}

// TestErrorDrawRepeats checks that a seed gives the same failures in the
// same order, and that concurrent requests report exactly the successes.
func TestErrorDrawRepeats(t *testing.T) {
	t.Parallel()
	outcomes := func(seed int64) string {
		_, url := start(t, Options{ErrorRate: 0.5, Seed: seed})
		var b strings.Builder
		for range 40 {
			status, _ := do(t, "POST", url+"/v1/completions", `{"model":"m","prompt":"hi"}`)
			b.WriteString(map[bool]string{true: "x", false: "."}[status == http.StatusInternalServerError])
		}
		return b.String()
	}
	first := outcomes(7)
	if again := outcomes(7); again != first {
		t.Errorf("seed 7 gave %s, then %s", first, again)
	}
	if !strings.Contains(first, "x") || !strings.Contains(first, ".") {
		t.Errorf("rate 0.5 gave %s over 40 requests", first)
	}

	s, url := start(t, Options{ErrorRate: 0.5, Seed: 3, CompletionTokens: 2})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 20 {
		wg.Go(func() { // not do: t.Fatal belongs to the test's goroutine
			resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"hi"}`))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode == http.StatusOK {
				ok++
			}
		})
	}
	wg.Wait()
	if got, want := s.Reported(), (Usage{int64(ok), int64(ok), 2 * int64(ok), 3 * int64(ok)}); got != want {
		t.Errorf("Reported() = %+v after %d successes, want %+v", got, ok, want)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	s, url := start(t, Options{})
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		param                    any
	}{
		{"bad JSON", "POST", "/v1/chat/completions", `{"model":`, 400, nil},
		{"trailing garbage", "POST", "/v1/embeddings", `{"model":"m","input":"x"} x`, 400, nil},
		{"no model", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "model"},
		{"model not a string", "POST", "/v1/completions", `{"model":3,"prompt":"hi"}`, 400, "model"},
		{"no messages", "POST", "/v1/chat/completions", `{"model":"m"}`, 400, "messages"},
		{"content a number", "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":1}]}`, 400, "messages.content"},
		{"no prompt", "POST", "/v1/completions", `{"model":"m"}`, 400, "prompt"},
		{"prompt an object", "POST", "/v1/completions", `{"model":"m","prompt":{}}`, 400, "prompt"},
		{"empty input", "POST", "/v1/embeddings", `{"model":"m","input":[]}`, 400, "input"},
		{"bad encoding", "POST", "/v1/embeddings", `{"model":"m","input":"x","encoding_format":"int8"}`, 400, "encoding_format"},
		{"unknown path", "POST", "/v1/images/generations", `{}`, 404, nil},
		{"no /v1", "GET", "/models", ``, 404, nil},
		{"GET a POST path", "GET", "/v1/chat/completions", ``, 405, nil},
		{"POST a GET path", "POST", "/v1/models", `{}`, 405, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := do(t, tc.method, url+tc.path, tc.body)
			checkError(t, status, tc.status, b, invalidRequest, tc.param)
		})
	}
	if got := s.Reported(); got != (Usage{}) {
		t.Errorf("Reported() = %+v after bad requests only, want none", got)
	}
}

// TestBodyTooLarge calls the handler directly: over a connection, the
// client may see the server hang up before it has sent the whole body.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	body := `{"model":"m","input":"` + strings.Repeat("x", maxBody) + `"}`
	w := httptest.NewRecorder()
	New(Options{}).ServeHTTP(w, httptest.NewRequest("POST", "/v1/embeddings", strings.NewReader(body)))
	checkError(t, w.Code, http.StatusRequestEntityTooLarge, w.Body.Bytes(), invalidRequest, nil)
}

func TestMethodNotAllowedSaysWhich(t *testing.T) {
	t.Parallel()
	_, url := start(t, Options{})
	resp, err := http.Get(url + "/v1/embeddings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("status %d, Allow %q; want 405, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	const key = "sk-mock-secret"
	_, url := start(t, Options{APIKey: key})
	body := `{"model":"m","prompt":"hi"}`

	status, b := do(t, "POST", url+"/v1/completions", body)
	checkError(t, status, http.StatusUnauthorized, b, invalidRequest, nil)
	status, b = do(t, "POST", url+"/v1/completions", body, "Authorization", "Bearer sk-wrong")
	if e := checkError(t, status, http.StatusUnauthorized, b, invalidRequest, nil); e["code"] != "invalid_api_key" {
		t.Errorf("wrong key: answer %s, want code invalid_api_key", b)
	}
	status, b = do(t, "GET", url+"/v1/nowhere", "", "Authorization", key) // no "Bearer"
	checkError(t, status, http.StatusUnauthorized, b, invalidRequest, nil)
	if strings.Contains(string(b), key) {
		t.Errorf("answer %s echoes the key", b)
	}
	if status, b = do(t, "POST", url+"/v1/completions", body, "Authorization", "Bearer "+key); status != http.StatusOK {
		t.Errorf("right key: status %d: %s", status, b)
	}
}
