package mockupstream

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// stream sends c as server-sent events: for chat, a chunk with the
// assistant's role; a chunk per token, ChunkDelay apart; a chunk with no
// choices and the usage; then [DONE]. The usage chunk is sent whether or not
// the request asked for it with stream_options.include_usage, because the
// gateway settles on it. If the client goes away the stream stops, and its
// usage, never sent, is not reported.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, c completion) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ev := events{w: w, rc: http.NewResponseController(w)}
	if ev.flush() != nil { // the status now, not with the first token
		return
	}
	if c.chat {
		role := c.choice(true, "", nil)
		role.Delta.Role = "assistant"
		if ev.send(c.frame(true, role)) != nil {
			return
		}
	}
	for i := range c.tokens {
		if !wait(r.Context(), s.opts.ChunkDelay) {
			return
		}
		var finish *string
		if i == c.tokens-1 {
			finish = &c.finish
		}
		if ev.send(c.frame(true, c.choice(true, word(i), finish))) != nil {
			return
		}
	}
	if r.Context().Err() != nil {
		return
	}
	last := c.frame(true)
	last.Usage = c.usage()
	if ev.send(last) != nil {
		return
	}
	s.report(c.prompt, c.tokens)
	_ = ev.done()
}

// events writes server-sent events, each flushed to the client at once.
type events struct {
	w  io.Writer
	rc *http.ResponseController
}

func (e events) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		panic("mockupstream: chunk does not marshal: " + err.Error()) // our own types; a bug
	}
	if _, err := e.w.Write(append(append([]byte("data: "), b...), "\n\n"...)); err != nil {
		return err
	}
	return e.flush()
}

func (e events) done() error {
	if _, err := io.WriteString(e.w, "data: [DONE]\n\n"); err != nil {
		return err
	}
	return e.flush()
}

// flush pushes what is written to the client. A writer that cannot flush
// (a test's recorder, a wrapping middleware) still gets every event, only
// later.
func (e events) flush() error {
	if err := e.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}
