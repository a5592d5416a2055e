package limiter

import (
	"sync"
	"time"
)

// Clock tells the store what time it is. Decisions use wall-clock Unix time
// because windows and calendar months are aligned to it; a clock that steps
// backwards is treated as standing still.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock. It reads only the monotonic clock and adds
// it to the wall time it started at: half the cost of time.Now, and immune
// to wall-clock steps. Create one with NewSystemClock.
type SystemClock struct {
	start     time.Time
	startUnix int64
}

// NewSystemClock returns the real clock, anchored now.
func NewSystemClock() *SystemClock {
	now := time.Now()
	return &SystemClock{start: now, startUnix: now.UnixNano()}
}

// Now returns the current time.
func (c *SystemClock) Now() time.Time { return time.Unix(0, c.UnixNano()) }

// UnixNano returns the current time in Unix nanoseconds; the store's hot
// path calls it instead of Now.
func (c *SystemClock) UnixNano() int64 { return c.startUnix + int64(time.Since(c.start)) }

// ManualClock is a clock that only moves when told to; for tests and
// simulations. The zero value is not usable: create one with NewManualClock.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock stopped at start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}
