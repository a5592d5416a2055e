package limiter

import (
	"testing"
	"time"
)

// The ticked time is never ahead of the clock and keeps up with it: each
// read lies between a read of the clock a while before (a tick late, or
// however long the ticker was kept from running) and one right after.
func TestSystemClockIsNeverAheadAndMoves(t *testing.T) {
	t.Parallel()
	c := NewSystemClock()
	first := c.UnixNano()
	for range 1000 {
		before := c.exact()
		got := c.UnixNano()
		after := c.exact()
		if got > after {
			t.Fatalf("read %d is ahead of the clock %d", got, after)
		}
		if got < before-int64(time.Second) {
			t.Fatalf("read %d is %s behind the clock", got, time.Duration(before-got))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.UnixNano() <= first+int64(5*Resolution) {
		if time.Now().After(deadline) {
			t.Fatal("the ticked time did not move in 10s")
		}
		time.Sleep(Resolution)
	}
}

// An unread clock stops its ticker, and the next read starts it again.
func TestSystemClockTickerStopsWhenIdle(t *testing.T) {
	t.Parallel()
	c := NewSystemClock()
	c.UnixNano()
	if !c.running.Load() {
		t.Fatal("a read did not start the ticker")
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.running.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the ticker still runs %s after the last read", 10*time.Second)
		}
		time.Sleep(10 * Resolution)
	}
	if c.ticked.Load() != 0 {
		t.Fatal("a stopped ticker left its last tick to be read")
	}
	if now := c.UnixNano(); now < c.startUnix || !c.running.Load() {
		t.Fatalf("a read after the stop returned %d and left running=%v", now, c.running.Load())
	}
}
