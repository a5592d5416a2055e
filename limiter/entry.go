package limiter

// entry is the state of one limit of one tenant. Each algorithm uses its own
// fields; times are Unix nanoseconds.
type entry struct {
	lim Limit

	// token bucket: level is the tokens consumed and not yet refilled, in
	// token·nanoseconds (tokens × Period), as of last.
	level u128
	last  int64

	// windows and calendar months: the index of the current window (now /
	// Period, or year*12+month) and the hits counted in it and the one
	// before.
	win       int64
	cur, prev int64

	// concurrency: the leases held.
	leases []lease
}

// decide returns the decision for hits at now. It consumes nothing; it may
// roll windows forward, which changes no decision.
func (e *entry) decide(now, hits int64) Result {
	switch e.lim.Algorithm {
	case SlidingWindow:
		return e.slidingDecide(now, hits)
	case FixedWindow:
		return e.fixedDecide(now, hits)
	case Concurrency:
		return e.concDecide(now, hits)
	case CalendarMonth:
		return e.monthDecide(now, hits)
	default:
		return e.bucketDecide(now, hits)
	}
}

// take consumes hits that decide allowed at now. id names the lease a
// Concurrency limit hands out.
func (e *entry) take(now, hits int64, id uint64) {
	switch e.lim.Algorithm {
	case Concurrency:
		e.concTake(now, hits, id)
	case TokenBucket:
		e.bucketCharge(now, hits)
	default:
		e.cur = satAdd(e.cur, hits)
	}
}

// adjust settles an earlier reservation.
func (e *entry) adjust(now int64, a *Adjustment) {
	switch e.lim.Algorithm {
	case TokenBucket:
		if a.Delta >= 0 {
			e.bucketCharge(now, a.Delta)
		} else {
			e.bucketRefund(now, -a.Delta)
		}
	case Concurrency:
		e.concRelease(a.Lease)
	case CalendarMonth:
		e.rollMonth(now)
		e.windowAdjust(a)
	default:
		e.roll(now)
		e.windowAdjust(a)
	}
}

// windowAdjust adds a settlement's delta to the window it belongs to:
// charges land in the current window, refunds only in the window (or, for
// a sliding window, the previous one) they were reserved in.
func (e *entry) windowAdjust(a *Adjustment) {
	switch {
	case a.Delta >= 0:
		e.cur = satAdd(e.cur, a.Delta)
	case a.Window == e.win:
		e.cur = max(e.cur+a.Delta, 0)
	case a.Window == e.win-1 && e.lim.Algorithm == SlidingWindow:
		e.prev = max(e.prev+a.Delta, 0)
	}
}

// restAt returns the time from which the entry decides exactly as a fresh
// one would, so that forgetting it changes nothing.
func (e *entry) restAt() int64 {
	p := int64(e.lim.Period)
	switch e.lim.Algorithm {
	case TokenBucket:
		return satAdd(e.last, e.level.divCeil(uint64(e.lim.Limit)))
	case FixedWindow:
		if e.cur > 0 {
			return (e.win + 1) * p
		}
	case SlidingWindow:
		if e.cur > 0 {
			return (e.win + 2) * p
		}
		if e.prev > 0 {
			return (e.win + 1) * p
		}
	case CalendarMonth:
		if e.cur > 0 {
			return monthStart(e.win + 1)
		}
	case Concurrency:
		var at int64
		for _, l := range e.leases {
			at = max(at, l.expires)
		}
		return at
	}
	return 0
}

// reshape applies a changed definition of the same limit without forgetting
// what was consumed: the state is first brought to now under the old
// definition, then a token bucket keeps its outstanding tokens and windows
// keep the current count. A change of algorithm starts afresh.
func (e *entry) reshape(now int64, l Limit) {
	old := e.lim
	switch {
	case old.Algorithm != l.Algorithm:
		*e = entry{lim: l}
		return
	case l.Algorithm == TokenBucket && old.Period == l.Period:
		e.level = e.bucketLevel(now)
		e.last = max(e.last, now)
	case l.Algorithm == TokenBucket:
		tokens := e.bucketLevel(now).divCeil(uint64(old.Period))
		e.level = mul64(uint64(tokens), uint64(l.Period))
		e.last = max(e.last, now)
	case old.Period == l.Period:
	case l.Algorithm == FixedWindow || l.Algorithm == SlidingWindow:
		e.roll(now)
		e.win = now / int64(l.Period)
		e.prev = 0
	}
	e.lim = l
}

func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
