package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/proxy/mockupstream"
)

// runMockUpstream runs `tollgate mock-upstream`: a fake OpenAI-compatible
// API to point the gateway at, until ctx ends.
func runMockUpstream(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate mock-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (port 0: any free port)")
	latency := fs.Duration("latency", 0, "wait before answering each request")
	chunkDelay := fs.Duration("chunk-delay", 0, "wait before each streamed token chunk")
	tokens := fs.Int("completion-tokens", mockupstream.DefaultCompletionTokens, "completion tokens per answer; a request's max_tokens may lower it")
	errorRate := fs.Float64("error-rate", 0, "share of requests, 0 to 1, answered 500")
	seed := fs.Int64("seed", 0, "seed of the draw of failing requests, so runs repeat")
	models := commaList(mockupstream.DefaultModels())
	fs.Var(&models, "models", "comma-separated models listed by GET /v1/models (any model is answered)")
	apiKey := fs.String("api-key", "", "bearer key requests must carry (default $TOLLGATE_MOCK_API_KEY; with neither, none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *apiKey == "" {
		*apiKey = getenv("TOLLGATE_MOCK_API_KEY") // read after parsing: help must not print it
	}
	opts := mockupstream.Options{
		Latency:          *latency,
		ChunkDelay:       *chunkDelay,
		CompletionTokens: *tokens,
		ErrorRate:        *errorRate,
		Seed:             *seed,
		Models:           models,
		APIKey:           *apiKey,
	}
	if err := opts.Validate(); err != nil {
		// Name the flag the user typed rather than the Options field.
		flagOf := map[string]string{"Latency": "latency", "ChunkDelay": "chunk-delay",
			"CompletionTokens": "completion-tokens", "ErrorRate": "error-rate", "Models": "models"}
		var oe *mockupstream.OptionError
		if errors.As(err, &oe) && flagOf[oe.Field] != "" {
			return fmt.Errorf("--%s: %s", flagOf[oe.Field], oe.Reason)
		}
		return err
	}
	if *tokens == 0 { // to Options, 0 means the default; here the default is spelled out
		return errors.New("--completion-tokens: must be at least 1, got 0")
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	srv := &http.Server{Handler: mockupstream.New(opts), ReadHeaderTimeout: 10 * time.Second}
	// The real address, so that port 0 can be found by whoever started us.
	fmt.Fprintf(stdout, "mock upstream listening on http://%s\n", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err // Serve never returns nil; without Shutdown, this is a failure
	case <-ctx.Done():
	}
	// ctx has ended; the grace period needs its own clock.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		// Streams still running after the grace period are cut off.
		_ = srv.Close()
		err = fmt.Errorf("shutdown: %w", err)
	}
	<-served // Serve returns ErrServerClosed once Shutdown or Close has begun
	return err
}
