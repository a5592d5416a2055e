package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// relayAll runs the SSE relay over src into a recorder.
func relayAll(t testing.TB, src io.Reader, wantUsage bool) (*sseRelay, string) {
	rec := httptest.NewRecorder()
	s := &sseRelay{dst: rec, rc: http.NewResponseController(rec), wantUsage: wantUsage}
	if err := s.relay(src); err != nil {
		t.Fatalf("relay: %v", err)
	}
	return s, rec.Body.String()
}

const usageChunk = `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`

func stream(lineEnd string, chunks ...string) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, "data: %s%s%s", c, lineEnd, lineEnd)
	}
	return b.String()
}

func TestTheRelayPassesEventsWhateverTheReadsAndLineEnds(t *testing.T) {
	t.Parallel()
	long := `{"choices":[{"delta":{"content":"` + strings.Repeat("x", 40<<10) + `"}}]}`
	for name, src := range map[string]string{
		"lf":                            stream("\n", `{"choices":[{}]}`, `{"choices":[{}]}`, usageChunk, "[DONE]"),
		"crlf":                          stream("\r\n", `{"choices":[{}]}`, `{"choices":[{}]}`, usageChunk, "[DONE]"),
		"a line longer than the buffer": stream("\n", long, long, usageChunk, "[DONE]"),
		"comments and fields":           ": keep-alive\n\nevent: x\nid: 1\ndata: {\"choices\":[{}]}\n\n" + stream("\n", `{"choices":[{}]}`, usageChunk, "[DONE]"),
	} {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/one byte %v", name, oneByte), func(t *testing.T) {
				var r io.Reader = strings.NewReader(src)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				// Asked for, the usage chunk passes: the stream is unchanged.
				s, out := relayAll(t, r, true)
				if out != src {
					t.Fatalf("relayed %q\nwant    %q", out, src)
				}
				if s.usage == nil || s.usage.PromptTokens != 3 || s.usage.CompletionTokens != 2 || s.chunks != 2 {
					t.Fatalf("usage %+v, %d content chunks; want 3+2 and 2", s.usage, s.chunks)
				}
				// Not asked for, only the usage chunk is dropped.
				_, out = relayAll(t, strings.NewReader(src), false)
				if strings.Contains(out, `"usage"`) || strings.Count(out, "data:") != strings.Count(src, "data:")-1 {
					t.Fatalf("without include_usage: %q", out)
				}
			})
		}
	}
	t.Run("unterminated last event", func(t *testing.T) {
		_, out := relayAll(t, strings.NewReader("data: {\"choices\":[{}]}\n\ndata: [DONE]"), false)
		if want := stream("\n", `{"choices":[{}]}`, "[DONE]"); out != want {
			t.Fatalf("relayed %q, want %q", out, want)
		}
	})
}

func TestAnEventOverTheCapPassesThroughUnread(t *testing.T) {
	t.Parallel()
	huge := "data: " + strings.Repeat("y", maxEventSize+10) + "\n\n"
	src := huge + stream("\n", usageChunk, "[DONE]")
	s, out := relayAll(t, strings.NewReader(src), true)
	if out != src {
		t.Fatalf("relayed %d bytes, want the %d sent unchanged", len(out), len(src))
	}
	if s.usage == nil || s.usage.CompletionTokens != 2 {
		t.Fatalf("usage after a huge event: %+v", s.usage)
	}
}

// FuzzSSERelay feeds arbitrary upstream streams to the relay: it must not
// panic, must pass on every byte of data it does not drop (only a usage
// chunk the client did not ask for is dropped), and must end every event
// it sends with a blank line.
func FuzzSSERelay(f *testing.F) {
	f.Add([]byte(stream("\n", `{"choices":[{}]}`, usageChunk, "[DONE]")))
	f.Add([]byte("data: a\r\n\r\n: comment\n\nevent: x\ndata: b\ndata: c\n\n"))
	f.Add([]byte("data: [DONE]"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		_, out := relayAll(t, bytes.NewReader(src), true)
		if len(out) > 0 && !endsEvent(out) {
			t.Fatalf("output does not end an event: %q", out)
		}
		if got, want := strings.Count(out, "data:"), bytes.Count(src, []byte("data:")); got > want {
			t.Fatalf("%d data fields out, %d in", got, want)
		}
	})
}

// endsEvent reports whether s ends with a blank line: a line end (CRLF,
// LF or CR) right after another.
func endsEvent(s string) bool {
	for _, end := range []string{"\r\n", "\n", "\r"} {
		if rest, ok := strings.CutSuffix(s, end); ok {
			return strings.HasSuffix(rest, "\n") || strings.HasSuffix(rest, "\r")
		}
	}
	return false
}
