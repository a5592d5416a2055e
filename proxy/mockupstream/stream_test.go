package mockupstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// nextEvent reads one server-sent event and returns its data.
func nextEvent(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	data, ok := strings.CutPrefix(line, "data: ")
	if !ok {
		return "", errors.New("not a data line: " + line)
	}
	if blank, err := r.ReadString('\n'); err != nil || blank != "\n" {
		return "", errors.New("event not ended by a blank line")
	}
	return strings.TrimSuffix(data, "\n"), nil
}

// streamEvents posts a streamed request and returns the data of each event
// before [DONE], checking that [DONE] ends the stream.
func streamEvents(t *testing.T, url, body string) []string {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	r := bufio.NewReader(resp.Body)
	var events []string
	for {
		data, err := nextEvent(r)
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		if data == "[DONE]" {
			break
		}
		events = append(events, data)
	}
	if rest, _ := io.ReadAll(r); len(rest) > 0 {
		t.Errorf("after [DONE]: %q", rest)
	}
	return events
}

// checkTokenChunks checks the chunks carrying the answer's n words, as text
// reads them from each, and that only the last has a finish reason.
func checkTokenChunks(t *testing.T, chunks []string, object, id string, text func(answer) *string) {
	t.Helper()
	var all strings.Builder
	for i, raw := range chunks {
		c := decode[answer](t, []byte(raw))
		if c.Object != object || c.ID != id || len(c.Choices) != 1 || text(c) == nil || !strings.Contains(raw, `"usage":null`) {
			t.Fatalf("token chunk %d: %s, want a %s of %s with one word and usage null", i, raw, object, id)
		}
		all.WriteString(*text(c))
		if finish := c.Choices[0].FinishReason; (i == len(chunks)-1) != (finish != nil) {
			t.Errorf("token chunk %d: %s, want a finish reason on the last only", i, raw)
		}
	}
	if want := strings.TrimSpace(strings.Repeat("tok ", len(chunks))); all.String() != want {
		t.Errorf("streamed text %q, want %q", all.String(), want)
	}
}

// checkUsageChunk checks the chunk after the tokens: no choices, the usage.
func checkUsageChunk(t *testing.T, raw string, want usageJSON) {
	t.Helper()
	c := decode[answer](t, []byte(raw))
	if !strings.Contains(raw, `"choices":[]`) || c.Usage == nil || *c.Usage != want {
		t.Errorf("usage chunk %s, want choices [] and usage %+v", raw, want)
	}
}

func TestChatStream(t *testing.T) {
	t.Parallel()
	s, url := start(t, Options{CompletionTokens: 4, ChunkDelay: time.Millisecond})
	// include_usage false: the usage chunk comes anyway. "twelve chars": 3 prompt tokens.
	events := streamEvents(t, url+"/v1/chat/completions", `{"model":"gpt-x","stream":true,
		"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"twelve chars"}]}`)
	if len(events) != 1+4+1 {
		t.Fatalf("%d events before [DONE], want a role chunk, 4 token chunks and a usage chunk: %q", len(events), events)
	}
	role := decode[answer](t, []byte(events[0]))
	if role.Object != "chat.completion.chunk" || role.Model != "gpt-x" || len(role.Choices) != 1 || role.Choices[0].Delta == nil ||
		role.Choices[0].Delta.Role == nil || *role.Choices[0].Delta.Role != "assistant" || *role.Choices[0].Delta.Content != "" {
		t.Errorf("first chunk %s, want the assistant's role and empty content", events[0])
	}
	checkTokenChunks(t, events[1:5], "chat.completion.chunk", role.ID, func(c answer) *string {
		if d := c.Choices[0].Delta; d != nil && d.Role == nil {
			return d.Content
		}
		return nil
	})
	checkUsageChunk(t, events[5], usageJSON{3, 4, 7})
	if got, want := s.Reported(), (Usage{1, 3, 4, 7}); got != want {
		t.Errorf("Reported() = %+v, want %+v", got, want)
	}
}

func TestTextStream(t *testing.T) {
	t.Parallel()
	s, url := start(t, Options{CompletionTokens: 9})
	events := streamEvents(t, url+"/v1/completions", `{"model":"davinci","stream":true,"max_tokens":3,"prompt":"hi"}`)
	if len(events) != 3+1 {
		t.Fatalf("%d events before [DONE], want 3 token chunks and a usage chunk: %q", len(events), events)
	}
	first := decode[answer](t, []byte(events[0]))
	if !strings.HasPrefix(first.ID, "cmpl-") || first.Model != "davinci" {
		t.Errorf("first chunk %s, want a cmpl- id and model davinci", events[0])
	}
	checkTokenChunks(t, events[:3], "text_completion", first.ID, func(c answer) *string { return c.Choices[0].Text })
	if finish := decode[answer](t, []byte(events[2])).Choices[0].FinishReason; *finish != "length" {
		t.Errorf("last token chunk %s: want finish length, max_tokens cut it short", events[2])
	}
	checkUsageChunk(t, events[3], usageJSON{1, 3, 4})
	if got, want := s.Reported(), (Usage{1, 1, 3, 4}); got != want {
		t.Errorf("Reported() = %+v, want %+v", got, want)
	}
}

// TestStreamStopsWhenClientLeaves reads the first chunk while the server
// waits to send the next, which shows chunks are flushed one by one; then it
// hangs up and checks the handler returns without reporting the usage it
// never sent.
func TestStreamStopsWhenClientLeaves(t *testing.T) {
	t.Parallel()
	s := New(Options{ChunkDelay: time.Hour})
	returned := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := nextEvent(bufio.NewReader(resp.Body))
	if err != nil || !strings.Contains(data, `"role":"assistant"`) {
		t.Fatalf("first event %q, %v; want the role chunk", data, err)
	}
	select {
	case <-returned:
		t.Fatal("the handler returned before the client left; the role chunk was not flushed on its own")
	default:
	}

	cancel()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler still runs 10s after its client left")
	}
	if got := s.Reported(); got != (Usage{}) {
		t.Errorf("Reported() = %+v for an abandoned stream, want none", got)
	}
}
