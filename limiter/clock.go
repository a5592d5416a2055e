package limiter

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the store what time it is. Decisions use wall-clock Unix time
// because windows and calendar months are aligned to it; a clock that steps
// backwards is treated as standing still.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock. It reads only the monotonic clock and adds
// it to the wall time it started at: immune to wall-clock steps.
//
// UnixNano, the store's hot path, does not read the clock at all while the
// clock is in use: a ticker stores the time every Resolution and a read
// loads it, which saves a check the clock read (tens of nanoseconds on a
// virtual machine, and a fence the CPU cannot run past). The time a
// decision sees is at most about Resolution old, never ahead; late is the
// safe side of a limit, as it refills less, never more. The ticker stops
// itself after idleTicks ticks without a read and the next read starts it
// again, so an idle store wakes nothing. Create one with NewSystemClock.
type SystemClock struct {
	start     time.Time
	startUnix int64

	ticked  atomic.Int64 // the time as of the last tick; 0 while no ticker runs
	read    atomic.Bool  // read since the last tick
	running atomic.Bool  // a ticker runs
}

// Resolution is how often a running SystemClock's ticker stores the time.
const Resolution = time.Millisecond

// idleTicks is how many ticks without a read stop the ticker.
const idleTicks = 100

// NewSystemClock returns the real clock, anchored now.
func NewSystemClock() *SystemClock {
	now := time.Now()
	return &SystemClock{start: now, startUnix: now.UnixNano()}
}

// Now returns the current time, read from the clock.
func (c *SystemClock) Now() time.Time { return time.Unix(0, c.exact()) }

func (c *SystemClock) exact() int64 { return c.startUnix + int64(time.Since(c.start)) }

// UnixNano returns the time in Unix nanoseconds as of the last tick, or
// read from the clock (starting the ticker) when no ticker runs.
func (c *SystemClock) UnixNano() int64 {
	if t := c.ticked.Load(); t != 0 {
		if !c.read.Load() { // mostly true already: a load, not a store
			c.read.Store(true)
		}
		return t
	}
	return c.wake()
}

// wake reads the clock and starts the ticker unless another read just did.
func (c *SystemClock) wake() int64 {
	now := c.exact()
	if c.running.CompareAndSwap(false, true) {
		c.read.Store(true)
		c.ticked.Store(now)
		go c.tick()
	}
	return now
}

func (c *SystemClock) tick() {
	t := time.NewTicker(Resolution)
	defer t.Stop()
	for idle := 0; ; {
		<-t.C
		if c.read.Swap(false) {
			idle = 0
		} else if idle++; idle >= idleTicks {
			// A read that loaded the last tick before this is at most one
			// tick late; the reads after it find 0 and start a ticker.
			c.ticked.Store(0)
			c.running.Store(false)
			return
		}
		c.ticked.Store(c.exact())
	}
}

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
