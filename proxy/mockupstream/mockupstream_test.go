package mockupstream

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// start serves a Server built from opts on loopback for the test.
func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// do sends body (none if "") to url and returns the status and the raw answer.
func do(t *testing.T, method, url, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
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

// answer is a completion answer or chunk, as a client decodes it.
type answer struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Message *struct{ Role, Content string } `json:"message"`
		Delta   *struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageJSON `json:"usage"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return v
}

// checkError asserts an error answer in OpenAI's shape, with exactly its
// four fields, and returns it.
func checkError(t *testing.T, status, wantStatus int, b []byte, wantType string, wantParam any) map[string]any {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d; answer %s", status, wantStatus, b)
	}
	e, ok := decode[map[string]map[string]any](t, b)["error"]
	if !ok || len(e) != 4 {
		t.Fatalf("answer %s: want {\"error\":{message,type,param,code}}", b)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("answer %s: no message", b)
	}
	if e["type"] != wantType || e["param"] != wantParam {
		t.Errorf("answer %s: want type %q, param %v", b, wantType, wantParam)
	}
	if _, ok := e["code"]; !ok {
		t.Errorf("answer %s: no code", b)
	}
	return e
}

func TestChatCompletion(t *testing.T) {
	t.Parallel()
	s, url := start(t, Options{})
	// 12 + 4 characters of content: 4 prompt tokens; 16 completion tokens by default.
	status, b := do(t, "POST", url+"/v1/chat/completions", `{"model":"gpt-x","temperature":0.2,"messages":[
		{"role":"system","content":"hello world!"},
		{"role":"user","content":[{"type":"text","text":"ab"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"cd"}]}]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	a := decode[answer](t, b)
	if a.Object != "chat.completion" || a.Model != "gpt-x" || !strings.HasPrefix(a.ID, "chatcmpl-") || a.Created == 0 {
		t.Errorf("answer %s: want a chat.completion of gpt-x", b)
	}
	if len(a.Choices) != 1 || a.Choices[0].Message == nil {
		t.Fatalf("answer %s: want one choice with a message", b)
	}
	want := strings.TrimSpace(strings.Repeat("tok ", 16))
	if m := a.Choices[0].Message; m.Role != "assistant" || m.Content != want || *a.Choices[0].FinishReason != "stop" {
		t.Errorf("answer %s: want the assistant saying %q, finish stop", b, want)
	}
	if got, wantUsage := *a.Usage, (usageJSON{4, 16, 20}); got != wantUsage {
		t.Errorf("usage %+v, want %+v", got, wantUsage)
	}
	if got, want := s.Reported(), (Usage{1, 4, 16, 20}); got != want {
		t.Errorf("Reported() = %+v, want %+v", got, want)
	}
}

func TestMaxTokensLowersTheCount(t *testing.T) {
	t.Parallel()
	_, url := start(t, Options{CompletionTokens: 5})
	for _, tc := range []struct {
		limits     string
		want       int
		wantFinish string
	}{
		{``, 5, "stop"},
		{`"max_tokens":3,`, 3, "length"},
		{`"max_completion_tokens":2,`, 2, "length"},
		{`"max_tokens":4,"max_completion_tokens":2,`, 2, "length"},
		{`"max_tokens":10,`, 5, "stop"}, // never raises it
		{`"max_tokens":5,`, 5, "stop"},
	} {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
			status, b := do(t, "POST", url+path, `{`+tc.limits+`"model":"m","messages":[{"role":"user","content":"hi"}],"prompt":"hi"}`)
			if status != http.StatusOK {
				t.Fatalf("%s %s: status %d: %s", path, tc.limits, status, b)
			}
			a := decode[answer](t, b)
			if a.Usage.CompletionTokens != tc.want || *a.Choices[0].FinishReason != tc.wantFinish {
				t.Errorf("%s %s: answer %s, want %d tokens, finish %s", path, tc.limits, b, tc.want, tc.wantFinish)
			}
		}
	}
	for _, limit := range []string{`"max_tokens":0`, `"max_completion_tokens":-1`} {
		param := strings.Trim(strings.Split(limit, ":")[0], `"`)
		status, b := do(t, "POST", url+"/v1/chat/completions", `{`+limit+`,"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		checkError(t, status, http.StatusBadRequest, b, invalidRequest, param)
	}
}

func TestTextCompletion(t *testing.T) {
	t.Parallel()
	s, url := start(t, Options{CompletionTokens: 3})
	// 5 + 3 characters: 2 prompt tokens.
	status, b := do(t, "POST", url+"/v1/completions", `{"model":"davinci","prompt":["abcde","fgh"]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	a := decode[answer](t, b)
	if a.Object != "text_completion" || a.Model != "davinci" || !strings.HasPrefix(a.ID, "cmpl-") {
		t.Errorf("answer %s: want a text_completion of davinci", b)
	}
	if len(a.Choices) != 1 || a.Choices[0].Text == nil || *a.Choices[0].Text != "tok tok tok" || a.Choices[0].Message != nil {
		t.Fatalf("answer %s: want one choice with text %q", b, "tok tok tok")
	}
	if got, want := *a.Usage, (usageJSON{2, 3, 5}); got != want {
		t.Errorf("usage %+v, want %+v", got, want)
	}
	// Token IDs count one token each.
	status, b = do(t, "POST", url+"/v1/completions", `{"model":"davinci","prompt":[1,2,3,4,5,6,7]}`)
	if status != http.StatusOK || decode[answer](t, b).Usage.PromptTokens != 7 {
		t.Errorf("token ID prompt: status %d, answer %s; want 7 prompt tokens", status, b)
	}
	if got, want := s.Reported(), (Usage{2, 9, 6, 15}); got != want {
		t.Errorf("Reported() = %+v, want %+v", got, want)
	}
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	s, url := start(t, Options{})
	type embeddings struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage map[string]int `json:"usage"`
	}
	// "same" twice and "other": 13 characters, 4 tokens.
	status, b := do(t, "POST", url+"/v1/embeddings", `{"model":"emb","input":["same","other","same"]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	e := decode[embeddings](t, b)
	if e.Object != "list" || e.Model != "emb" || len(e.Data) != 3 {
		t.Fatalf("answer %s: want a list of 3 embeddings of emb", b)
	}
	if want := map[string]int{"prompt_tokens": 4, "total_tokens": 4}; !maps.Equal(e.Usage, want) {
		t.Errorf("usage %v, want %v", e.Usage, want)
	}
	vecs := make([][]float32, 3)
	for i, d := range e.Data {
		vecs[i] = decode[[]float32](t, d.Embedding)
		if d.Object != "embedding" || d.Index != i || len(vecs[i]) != 8 {
			t.Errorf("embedding %d: %s, want 8 floats at index %d", i, b, i)
		}
		var norm float64
		for _, v := range vecs[i] {
			norm += float64(v) * float64(v)
		}
		if norm < 0.999 || norm > 1.001 {
			t.Errorf("embedding %d: squared norm %v, want 1", i, norm)
		}
	}
	if !slices.Equal(vecs[0], vecs[2]) || slices.Equal(vecs[0], vecs[1]) {
		t.Errorf("embeddings %v: want equal inputs equal, others different", vecs)
	}
	// base64 carries the same floats, as OpenAI's Python client asks by default.
	status, b = do(t, "POST", url+"/v1/embeddings", `{"model":"emb","input":"same","encoding_format":"base64"}`)
	if status != http.StatusOK {
		t.Fatalf("base64: status %d: %s", status, b)
	}
	if got := decode[embeddings](t, b).Data[0].Embedding; string(got) != `"`+encodeBase64(vecs[0])+`"` {
		t.Errorf("base64 embedding %s, want %s", got, encodeBase64(vecs[0]))
	}
	if got, want := s.Reported(), (Usage{2, 5, 0, 5}); got != want {
		t.Errorf("Reported() = %+v, want %+v", got, want)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		models, want []string
	}{
		{nil, []string{"mock-chat", "mock-embed"}},
		{[]string{"gpt-4o", "text-embedding-3-small", "o3"}, []string{"gpt-4o", "text-embedding-3-small", "o3"}},
	} {
		_, url := start(t, Options{Models: tc.models})
		status, b := do(t, "GET", url+"/v1/models", "")
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, b)
		}
		list := decode[struct {
			Object string `json:"object"`
			Data   []struct {
				ID      string `json:"id"`
				Object  string `json:"object"`
				Created int64  `json:"created"`
				OwnedBy string `json:"owned_by"`
			} `json:"data"`
		}](t, b)
		if list.Object != "list" || len(list.Data) != len(tc.want) {
			t.Fatalf("answer %s: want a list of %v", b, tc.want)
		}
		for i, m := range list.Data {
			if m.ID != tc.want[i] || m.Object != "model" || m.OwnedBy != "mock" || m.Created == 0 {
				t.Errorf("model %d: %+v, want %s", i, m, tc.want[i])
			}
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts  Options
		field string
	}{
		{Options{}, ""},
		{Options{ErrorRate: 1, CompletionTokens: 1, Models: []string{"a"}}, ""},
		{Options{Latency: -1}, "Latency"},
		{Options{ChunkDelay: -1}, "ChunkDelay"},
		{Options{CompletionTokens: -1}, "CompletionTokens"},
		{Options{ErrorRate: -0.1}, "ErrorRate"},
		{Options{ErrorRate: 1.5}, "ErrorRate"},
		{Options{Models: []string{"a", ""}}, "Models"},
	} {
		err := tc.opts.Validate()
		var oe *OptionError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v, want valid", tc.opts, err)
		case tc.field != "" && (!errors.As(err, &oe) || oe.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": ")):
			t.Errorf("%+v: %v, want an OptionError naming %s", tc.opts, err, tc.field)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted ErrorRate 2")
		}
	}()
	New(Options{ErrorRate: 2})
}
