package mockupstream

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequest sends arbitrary bodies to every POST endpoint: the server
// answers 200 or a 400 in OpenAI's shape, and never panics.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`,
		`{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		`{"model":"m","prompt":["a","b"],"stream":true}`,
		`{"model":"m","prompt":[[1,2],[3]]}`,
		`{"model":"m","input":"x","encoding_format":"base64"}`,
		`{"model":"m","input":[1,"x"]}`,
		`{"model":`,
	} {
		f.Add(seed)
	}
	s := New(Options{CompletionTokens: 3})
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest("POST", path, strings.NewReader(body)))
			switch w.Code {
			case http.StatusOK:
			case http.StatusBadRequest:
				checkError(t, w.Code, http.StatusBadRequest, w.Body.Bytes(), invalidRequest, decode[map[string]map[string]any](t, w.Body.Bytes())["error"]["param"])
			default:
				t.Fatalf("%s %q: status %d: %s", path, body, w.Code, w.Body)
			}
		}
	})
}
