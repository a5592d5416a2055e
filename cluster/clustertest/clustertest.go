// Package clustertest holds what tests of running nodes share, in this
// module's packages and processes alike: a logger that keeps the nodes'
// logs and shows them only when the test fails, and a wait for a
// condition with a deadline (never a bare sleep).
//
// It imports nothing of ours, so any package's tests may use it, the
// cluster's own included.
package clustertest

import (
	"bytes"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// Logger keeps the logs of the nodes a test runs and prints them if the
// test fails (every test's with TOLLGATE_TEST_LOG set). Gossip's own debug
// chatter is dropped: it would drown the rest.
func Logger(t testing.TB) *slog.Logger {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("TOLLGATE_TEST_LOG") != "" {
			t.Logf("node logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Eventually polls cond every 20 ms until it holds, and fails the test
// after timeout, saying what it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is written by every node's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bytes.Contains(p, []byte("component=gossip")) && bytes.Contains(p, []byte("level=DEBUG")) {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
