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
)

// estimate is what a request was reserved for, split as the settlement
// needs it when the upstream reports no usage.
type estimate struct{ prompt, completion int64 }

// usageJSON is the usage object of OpenAI's answers and last stream chunk.
type usageJSON struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

func (u *usageJSON) usage() Usage {
	return Usage{PromptTokens: max(u.PromptTokens, 0), CompletionTokens: max(u.CompletionTokens, 0)}
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
	sent := time.Now()
	resp, err := x.g.client.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			// The client left before any answer: nobody reads one, and
			// an upstream cut off before answering charges nothing.
			x.status, x.errCode = statusClientClosedEarly, "client_closed"
			x.settle(Usage{Failed: true})
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
		// OpenAI-compatible upstream answers in the same error shape).
		x.status, x.errCode = resp.StatusCode, "upstream_"+strconv.Itoa(resp.StatusCode)
		copyAnswerHeaders(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, maxCapturedAnswerSize))
		x.settle(Usage{Failed: true})
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

// relayJSON copies a whole answer through as it arrives, keeping a copy
// (up to maxCapturedAnswerSize) to read its usage from. Without usage the
// reservation stands as charged: the upstream did the work.
func (x *exchange) relayJSON(w http.ResponseWriter, resp *http.Response, est estimate) error {
	copyAnswerHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	x.status = resp.StatusCode
	var kept cappedBuffer
	_, err := io.Copy(w, io.TeeReader(resp.Body, &kept))
	var answer struct {
		Usage *usageJSON `json:"usage"`
	}
	if json.Unmarshal(kept.buf.Bytes(), &answer) == nil && answer.Usage != nil {
		x.settle(answer.Usage.usage())
	} else {
		x.settle(Usage{PromptTokens: est.prompt, CompletionTokens: est.completion})
		x.errCode = "no_usage"
	}
	return err
}

// cappedBuffer keeps the first maxCapturedAnswerSize bytes written.
type cappedBuffer struct{ buf bytes.Buffer }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxCapturedAnswerSize - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
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
	s := &sseRelay{dst: w, rc: http.NewResponseController(w), wantUsage: in.StreamOptions != nil && in.StreamOptions.IncludeUsage}
	_ = s.rc.Flush()
	err := s.relay(resp.Body)
	if s.usage != nil {
		x.settle(s.usage.usage())
	} else {
		x.settle(Usage{PromptTokens: est.prompt, CompletionTokens: s.chunks})
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
	clientErr error
}

// relay copies events until the stream ends, the upstream fails (its
// error is returned) or the client goes (clientErr).
func (s *sseRelay) relay(src io.Reader) error {
	br := bufio.NewReaderSize(src, 16<<10)
	var event, line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 {
			if len(event) > 0 && !s.send(event) {
				return nil
			}
			event = event[:0]
		} else {
			event = append(event, line...)
		}
		line = line[:0]
		if err != nil {
			if len(event) > 0 {
				s.send(event) // the last event, unterminated
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// send delivers one event unless it is the usage chunk the client did not
// ask for; it reports false once the client has gone.
func (s *sseRelay) send(event []byte) bool {
	data := eventData(event)
	switch {
	case data == nil || bytes.Equal(data, []byte("[DONE]")):
	case hasUsage(data):
		var chunk struct {
			Usage   *usageJSON        `json:"usage"`
			Choices []json.RawMessage `json:"choices"`
		}
		if json.Unmarshal(data, &chunk) == nil && chunk.Usage != nil {
			s.usage = chunk.Usage
			if len(chunk.Choices) == 0 {
				if !s.wantUsage {
					return true
				}
				break
			}
		}
		s.chunks++
	default:
		s.chunks++
	}
	event = append(event, '\n')
	if _, err := s.dst.Write(event); err != nil {
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

// hasUsage reports whether a chunk carries a usage object (not null), so
// only the last chunk of a stream is decoded.
func hasUsage(data []byte) bool {
	i := bytes.Index(data, []byte(`"usage"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(data[i+len(`"usage"`):], " \t\r\n")
	rest = bytes.TrimLeft(bytes.TrimPrefix(rest, []byte(":")), " \t\r\n")
	return len(rest) > 0 && rest[0] == '{'
}
