package mockupstream

import (
	"context"
	"crypto/subtle"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCompletionTokens is the answer length when Options leaves it zero.
const DefaultCompletionTokens = 16

// DefaultModels returns the models listed when Options leaves them empty.
func DefaultModels() []string { return []string{"mock-chat", "mock-embed"} }

// Options tune the fake upstream. The zero value is valid: no delays, no
// failures, no key, 16-token answers and the default model list.
type Options struct {
	Latency          time.Duration // wait before answering (before the first byte), per request
	ChunkDelay       time.Duration // wait before each streamed token chunk
	CompletionTokens int           // completion tokens per answer when the request sets no max_tokens / max_completion_tokens; 0 means 16. A request's limit lowers it, never raises it.
	ErrorRate        float64       // share of requests (0..1) answered 500 in OpenAI's error shape
	Seed             int64         // seeds the failure draw, so runs repeat
	Models           []string      // models listed by GET /v1/models; empty means ["mock-chat", "mock-embed"]. Requests for any model are answered.
	APIKey           string        // if set, requests must carry "Authorization: Bearer <APIKey>", else 401
}

// OptionError names the field of Options that Validate rejected, so a
// caller that filled Options from flags can name its flag instead.
type OptionError struct {
	Field  string // the Options field, e.g. "ErrorRate"
	Reason string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Reason }

// Validate reports the first invalid field as an *OptionError, or nil.
func (o Options) Validate() error {
	switch {
	case o.Latency < 0:
		return &OptionError{"Latency", fmt.Sprintf("must not be negative, got %s", o.Latency)}
	case o.ChunkDelay < 0:
		return &OptionError{"ChunkDelay", fmt.Sprintf("must not be negative, got %s", o.ChunkDelay)}
	case o.CompletionTokens < 0:
		return &OptionError{"CompletionTokens", fmt.Sprintf("must not be negative, got %d", o.CompletionTokens)}
	case math.IsNaN(o.ErrorRate) || o.ErrorRate < 0 || o.ErrorRate > 1:
		return &OptionError{"ErrorRate", fmt.Sprintf("must be between 0 and 1, got %v", o.ErrorRate)}
	}
	for i, m := range o.Models {
		if m == "" {
			return &OptionError{"Models", fmt.Sprintf("model %d has an empty name", i)}
		}
	}
	return nil
}

// Usage is a running total of the usage the server has reported.
type Usage struct {
	Requests         int64 // answers that carried usage: successful completions and embeddings
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
}

// Server is the fake upstream, an http.Handler safe for concurrent use.
type Server struct {
	opts    Options
	created int64        // every model's "created" time: when the server was made
	ids     atomic.Int64 // numbers the answers' ids

	mu  sync.Mutex
	rng *rand.Rand // the failure draw; guarded by mu, as rand.Rand is not safe for concurrent use

	requests, prompt, completion, total atomic.Int64 // what Reported returns
}

// New returns a server answering as opts says. It panics if opts is invalid:
// options are the caller's code, not outside input; check options built
// from input with Validate first.
func New(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic("mockupstream: " + err.Error())
	}
	if opts.CompletionTokens == 0 {
		opts.CompletionTokens = DefaultCompletionTokens
	}
	if len(opts.Models) == 0 {
		opts.Models = DefaultModels()
	}
	opts.Models = append([]string(nil), opts.Models...) // the caller's slice stays theirs
	return &Server{
		opts:    opts,
		created: time.Now().Unix(),
		rng:     rand.New(rand.NewPCG(uint64(opts.Seed), 0)),
	}
}

// Reported returns the usage totals of every answer sent so far. Each
// counter is exact once requests have finished; read while they are in
// flight, the counters may be from slightly different moments.
func (s *Server) Reported() Usage {
	return Usage{
		Requests:         s.requests.Load(),
		PromptTokens:     s.prompt.Load(),
		CompletionTokens: s.completion.Load(),
		TotalTokens:      s.total.Load(),
	}
}

// report counts the usage of one answer as sent.
func (s *Server) report(prompt, completion int) {
	s.prompt.Add(int64(prompt))
	s.completion.Add(int64(completion))
	s.total.Add(int64(prompt + completion))
	s.requests.Add(1)
}

// ServeHTTP checks the key, routes and answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The key comes first, as with the real API: an unauthenticated caller
	// learns nothing about paths.
	if e := s.authorize(r); e != nil {
		writeError(w, e)
		return
	}
	method, handle := s.route(r.URL.Path)
	if handle == nil {
		writeError(w, &apiError{status: http.StatusNotFound, Type: invalidRequest,
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, Type: invalidRequest,
			Message: fmt.Sprintf("Method %s not allowed for %s; use %s", r.Method, r.URL.Path, method)})
		return
	}
	handle(w, r)
}

func (s *Server) route(path string) (method string, handle http.HandlerFunc) {
	switch path {
	case "/v1/chat/completions":
		return http.MethodPost, s.chatCompletions
	case "/v1/completions":
		return http.MethodPost, s.textCompletions
	case "/v1/embeddings":
		return http.MethodPost, s.embeddings
	case "/v1/models":
		return http.MethodGet, s.models
	}
	return "", nil
}

// authorize returns the 401 to send, or nil. The key is never echoed.
func (s *Server) authorize(r *http.Request) *apiError {
	if s.opts.APIKey == "" {
		return nil
	}
	got := r.Header.Get("Authorization")
	if got == "" {
		return &apiError{status: http.StatusUnauthorized, Type: invalidRequest,
			Message: "You didn't provide an API key. Provide it in an Authorization header: Bearer YOUR_KEY."}
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+s.opts.APIKey)) != 1 {
		return &apiError{status: http.StatusUnauthorized, Type: invalidRequest, Code: ptr("invalid_api_key"),
			Message: "Incorrect API key provided."}
	}
	return nil
}

// admit runs between a valid request and its answer: it waits out the
// latency and draws an injected failure. It returns false when the handler
// must not answer, having sent the failure itself or found the client gone.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if !wait(r.Context(), s.opts.Latency) {
		return false // nobody left to answer
	}
	if s.injectFailure() {
		writeError(w, &apiError{status: http.StatusInternalServerError, Type: "server_error",
			Message: "mock upstream: injected failure"})
		return false
	}
	return true
}

func (s *Server) injectFailure() bool {
	if s.opts.ErrorRate == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < s.opts.ErrorRate // Float64 is below 1, so a rate of 1 always fails
}

// wait sleeps for d unless ctx ends first, and reports whether ctx is
// still live.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
