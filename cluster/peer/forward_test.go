package peer

import (
	"testing"
	"time"
)

// The batch window adapts to the load: a batch waits for company only when
// it starts an idle queue whose last batch was long.
func TestBatchWindowWaitsOnlyForLongQueues(t *testing.T) {
	t.Parallel()
	cfg := ForwardConfig{BatchWindow: time.Hour}
	cfg.SetDefaults()
	f := &Forwarder{cfg: cfg}
	for _, c := range []struct {
		name    string
		idle    bool // the batch starts an idle queue
		last    int  // the size of the batch before
		waiting int
		wait    bool
	}{
		{"a lone check", true, 1, 1, false},
		{"a short queue", true, 31, 5, false},
		{"a long queue", true, 32, 5, true},
		{"a long queue, already full", true, 128, 128, false},
		{"the batch after one that was out", false, 128, 5, false},
		{"small batches", true, 2, 1, false},
		{"nothing waiting (a stale wake-up after a full batch)", true, 128, 0, false},
	} {
		q := &queue{window: c.idle, last: c.last}
		for range c.waiting {
			q.waiting = append(q.waiting, &pending{queued: time.Now()})
		}
		if got := f.windowLeft(q) > 0; got != c.wait {
			t.Errorf("%s: waits %v, want %v", c.name, got, c.wait)
		}
	}
	small := &Forwarder{cfg: ForwardConfig{BatchWindow: time.Hour, BatchMax: 4}}
	q := &queue{window: true, last: 2, waiting: []*pending{{queued: time.Now()}}}
	if small.windowLeft(q) <= 0 {
		t.Error("with BatchMax 4 a batch of 2 is long, and the next waits")
	}
	q.last = 1
	if small.windowLeft(q) > 0 {
		t.Error("a lone check waits")
	}
}
