package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/quota"
)

// estimate is what a request was reserved for, split as the settlement
// needs it when the upstream reports no usage.
type estimate struct{ prompt, completion int64 }

// usageJSON is the usage object of OpenAI's answers and last stream chunk.
type usageJSON struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

func (u *usageJSON) usage() quota.Usage {
	return quota.Usage{PromptTokens: max(u.PromptTokens, 0), CompletionTokens: max(u.CompletionTokens, 0)}
}

// proxy calls the upstream and relays its answer, then settles with the
// usage it reported. An error it returns has not been written yet.
func (x *exchange) proxy(w http.ResponseWriter, r *http.Request, ep endpoint, in *inference, est estimate, body []byte) *apiError {
	ctx, cancel := context.WithTimeout(r.Context(), x.g.opts.Timeout)
	defer cancel()
	req, err := x.g.upstreamRequest(ctx, x.provider, ep.upstream, body, r)
	if err != nil {
		return errUpstream
	}
	// From here the upstream has the prompt: a crash bills it.
	x.progress(quota.Usage{PromptTokens: est.prompt})
	sent := time.Now()
	resp, err := x.g.client.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			// The client left before any answer. The upstream had the
			// request, so it counts as one, with no tokens: refunding it
			// whole would let a client that hangs up go unlimited.
			x.status, x.errCode = statusClientClosedEarly, "client_closed"
			x.settle(quota.Usage{})
			return nil
		}
		return upstreamFailure(err)
	}
	defer resp.Body.Close()
	x.g.metrics.upstream.Observe(time.Since(sent).Seconds())
	if apiErr, isErr := upstreamStatus(resp.StatusCode); isErr {
		if apiErr != nil {
			return apiErr
		}
		// The caller's mistake, in the upstream's words (an
		// OpenAI-compatible upstream answers in the same error shape). It
		// counts as a request, with no tokens.
		x.status, x.errCode = resp.StatusCode, "upstream_"+strconv.Itoa(resp.StatusCode)
		copyAnswerHeaders(w.Header(), resp.Header)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		x.settle(quota.Usage{})
		return nil
	}
	var relayErr error
	if in.Stream && strings.HasPrefix(resp.Header.Get("Content-Type"), contentTypeEventStream) {
		relayErr = x.relayStream(w, resp, in, est)
	} else {
		relayErr = x.relayJSON(w, resp, est)
	}
	switch {
	case r.Context().Err() != nil:
		x.errCode = "client_closed"
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		x.errCode = "upstream_timeout"
	case relayErr != nil:
		x.errCode = "relay_broken"
	}
	return nil
}

// copyAnswerHeaders passes on the headers that describe the body.
func copyAnswerHeaders(dst, src http.Header) {
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding"} {
		if v := src.Get(k); v != "" {
			dst.Set(k, v)
		}
	}
}

// relayJSON copies a whole answer through as it arrives, keeping its last
// bytes, where OpenAI's answers carry their usage. Without usage the
// reservation stands as charged: the upstream did the work.
func (x *exchange) relayJSON(w http.ResponseWriter, resp *http.Response, est estimate) error {
	copyAnswerHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	x.status = resp.StatusCode
	var tail tailBuffer
	_, err := io.Copy(w, io.TeeReader(resp.Body, &tail))
	if u := usageIn(tail.bytes()); u != nil {
		x.settle(u.usage())
	} else {
		x.settle(quota.Usage{PromptTokens: est.prompt, CompletionTokens: est.completion})
		x.errCode = "no_usage"
	}
	return err
}

// tailSize is how much of the end of an answer is kept to find its usage.
const tailSize = 64 << 10

// tailBuffer keeps the last tailSize bytes written.
type tailBuffer struct{ buf []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if extra := len(t.buf) - tailSize; extra > tailSize {
		t.buf = append(t.buf[:0], t.buf[extra:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) bytes() []byte { return t.buf[max(len(t.buf)-tailSize, 0):] }

// usageIn finds the last usage object in data (an answer's end, or a
// stream chunk) and decodes it; nil if there is none.
func usageIn(data []byte) *usageJSON {
	i := bytes.LastIndex(data, []byte(`"usage"`))
	if i < 0 {
		return nil
	}
	rest := bytes.TrimLeft(data[i+len(`"usage"`):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if rest = bytes.TrimLeft(rest, " \t\r\n"); !ok || len(rest) == 0 || rest[0] != '{' {
		return nil
	}
	var u usageJSON
	if json.NewDecoder(bytes.NewReader(rest)).Decode(&u) != nil {
		return nil
	}
	return &u
}

// relayStream passes a server-sent event stream through event by event,
// each flushed as it arrives, and settles with the usage of its last
// chunk. A stream cut short (the client left, the upstream broke or timed
// out) is charged what was delivered: the prompt's estimate and one token
// per content chunk, as OpenAI streams them.
func (x *exchange) relayStream(w http.ResponseWriter, resp *http.Response, in *inference, est estimate) error {
	h := w.Header()
	h.Set("Content-Type", resp.Header.Get("Content-Type"))
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(resp.StatusCode)
	x.status = resp.StatusCode
	s := &sseRelay{dst: w, rc: http.NewResponseController(w), wantUsage: in.StreamOptions != nil && in.StreamOptions.IncludeUsage,
		delivered: func(chunks int64) { x.progress(quota.Usage{PromptTokens: est.prompt, CompletionTokens: chunks}) }}
	_ = s.rc.Flush()
	err := s.relay(resp.Body)
	if s.usage != nil {
		x.settle(s.usage.usage())
	} else {
		x.settle(quota.Usage{PromptTokens: est.prompt, CompletionTokens: s.chunks})
		x.errCode = "no_usage"
	}
	if err == nil {
		err = s.clientErr
	}
	return err
}

// sseRelay copies one event stream.
type sseRelay struct {
	dst       io.Writer
	rc        *http.ResponseController
	wantUsage bool // the client asked for the usage chunk itself
	usage     *usageJSON
	chunks    int64 // content chunks delivered
	// delivered, if set, hears of every content chunk delivered.
	delivered func(chunks int64)
	clientErr error
}

// maxEventSize bounds the event the relay holds to read; a larger one is
// passed on as it comes, unread.
const maxEventSize = 1 << 20

// relay copies events until the stream ends, the upstream fails (its
// error is returned) or the client goes (clientErr).
func (s *sseRelay) relay(src io.Reader) error {
	br := bufio.NewReaderSize(src, 16<<10)
	var event []byte
	oversized := false // passing a large event through unread
	midLine := false   // the last read ended inside a line
	for {
		line, err := br.ReadSlice('\n')
		blank := !midLine && len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0
		midLine = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case blank && oversized:
			if !s.write(line) {
				return nil
			}
			oversized = false
		case blank:
			if len(event) > 0 && !s.send(event, line) {
				return nil
			}
			event = event[:0]
		case oversized:
			if !s.write(line) {
				return nil
			}
		default:
			event = append(event, line...)
			if len(event) > maxEventSize {
				if !s.write(event) {
					return nil
				}
				event, oversized = event[:0], true
			}
		}
		if midLine {
			continue
		}
		if err != nil {
			switch {
			case oversized:
				s.write([]byte("\n\n")) // end the event for the client
			case len(event) > 0:
				if event[len(event)-1] != '\n' {
					event = append(event, '\n')
				}
				s.send(event, []byte("\n")) // the last event, unterminated
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// send delivers one event and the blank line that ends it, unless it is
// the usage chunk the client did not ask for; it reports false once the
// client has gone.
func (s *sseRelay) send(event, end []byte) bool {
	data := eventData(event)
	switch {
	case data == nil || bytes.Equal(data, []byte("[DONE]")):
	default:
		u := usageIn(data)
		if u == nil {
			s.countChunk()
			break
		}
		s.usage = u
		var chunk struct {
			Choices []json.RawMessage `json:"choices"`
		}
		if json.Unmarshal(data, &chunk) == nil && len(chunk.Choices) == 0 {
			if !s.wantUsage {
				return true
			}
			break
		}
		s.countChunk()
	}
	return s.write(append(event, end...))
}

func (s *sseRelay) countChunk() {
	s.chunks++
	if s.delivered != nil {
		s.delivered(s.chunks)
	}
}

// write passes bytes on and flushes them; false once the client has gone.
func (s *sseRelay) write(p []byte) bool {
	if _, err := s.dst.Write(p); err != nil {
		s.clientErr = err
		return false
	}
	if err := s.rc.Flush(); err != nil {
		s.clientErr = err
		return false
	}
	return true
}

// eventData returns the data of an event ("data:" lines joined), nil if
// it has none.
func eventData(event []byte) []byte {
	var data []byte
	for len(event) > 0 {
		line, rest, _ := bytes.Cut(event, []byte("\n"))
		event = rest
		if v, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:")); ok {
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
		}
	}
	return data
}
