package limiter

import "unsafe"

// entry is the state of one limit of one tenant, 32 bytes. Its definition
// is shared (see shard.intern: every tenant of a plan points to one copy of
// each limit; a concurrency limit's copy is the entry's own and holds its
// leases), and as an entry runs one algorithm at a time its token bucket
// and its windows share the same 24 bytes of state; times are Unix
// nanoseconds.
type entry struct {
	def   *sharedLimit
	state [3]uint64 // a bucketState or a windowState, as def's algorithm says
}

// bucketState is a token bucket's: level is the tokens consumed and not
// yet refilled, in token·nanoseconds (tokens × Period), as of last.
type bucketState struct {
	level u128
	last  int64
}

// windowState is a fixed or sliding window's, or a calendar month's: the
// index of the current window (now / Period, or year*12+month) and the hits
// counted in it and the one before.
type windowState struct {
	win       int64
	cur, prev int64
}

// The views below read the state's words as either struct, which both are
// (three 8-byte words without pointers): they must stay that size.
var (
	_ [unsafe.Sizeof(entry{}.state) - unsafe.Sizeof(bucketState{})]byte
	_ [unsafe.Sizeof(bucketState{}) - unsafe.Sizeof(entry{}.state)]byte
	_ [unsafe.Sizeof(entry{}.state) - unsafe.Sizeof(windowState{})]byte
	_ [unsafe.Sizeof(windowState{}) - unsafe.Sizeof(entry{}.state)]byte
)

func (e *entry) bucket() *bucketState { return (*bucketState)(unsafe.Pointer(&e.state)) }
func (e *entry) window() *windowState { return (*windowState)(unsafe.Pointer(&e.state)) }

// lim returns the entry's limit.
func (e *entry) lim() *Limit { return &e.def.Limit }

func (e *entry) empty() bool { return e.def == nil }

// decide writes the decision for hits at now into r: through a pointer, as
// a returned Result was copied twice on its way out (a fifth of a cached
// check). It consumes nothing; it may roll windows forward, which changes
// no decision.
func (e *entry) decide(now, hits int64, r *Result) {
	switch e.lim().Algorithm {
	case SlidingWindow:
		e.slidingDecide(now, hits, r)
	case FixedWindow:
		e.fixedDecide(now, hits, r)
	case Concurrency:
		e.concDecide(now, hits, r)
	case CalendarMonth:
		e.monthDecide(now, hits, r)
	default:
		e.bucketDecide(now, hits, r)
	}
}

// take consumes hits that decide allowed at now. id names the lease a
// Concurrency limit hands out.
func (e *entry) take(now, hits int64, id uint64) {
	switch e.lim().Algorithm {
	case Concurrency:
		e.concTake(now, hits, id)
	case TokenBucket:
		e.bucketCharge(now, hits)
	default:
		e.window().cur = satAdd(e.window().cur, hits)
	}
}

// adjust settles an earlier reservation.
func (e *entry) adjust(now int64, a *Adjustment) {
	switch e.lim().Algorithm {
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
	w := e.window()
	switch {
	case a.Delta >= 0:
		w.cur = satAdd(w.cur, a.Delta)
	case a.Window == w.win:
		w.cur = max(w.cur+a.Delta, 0)
	case a.Window == w.win-1 && e.lim().Algorithm == SlidingWindow:
		w.prev = max(w.prev+a.Delta, 0)
	}
}

// restAt returns the time from which the entry decides exactly as a fresh
// one would, so that forgetting it changes nothing.
func (e *entry) restAt() int64 {
	lim, w := e.lim(), e.window()
	p := int64(lim.Period)
	switch lim.Algorithm {
	case TokenBucket:
		b := e.bucket()
		return satAdd(b.last, b.level.divCeil(uint64(lim.Limit)))
	case FixedWindow:
		if w.cur > 0 {
			return (w.win + 1) * p
		}
	case SlidingWindow:
		if w.cur > 0 {
			return (w.win + 2) * p
		}
		if w.prev > 0 {
			return (w.win + 1) * p
		}
	case CalendarMonth:
		if w.cur > 0 {
			return monthStart(w.win + 1)
		}
	case Concurrency:
		var at int64
		for _, l := range e.leases() {
			at = max(at, l.expires)
		}
		return at
	}
	return 0
}

// reshape applies a changed definition of the same limit without forgetting
// what was consumed: the state is first brought to now under the old
// definition, then a token bucket keeps its outstanding tokens and windows
// keep the current count. A change of algorithm starts afresh. It returns
// the old definition, for the caller to release.
func (e *entry) reshape(now int64, def *sharedLimit) (old *sharedLimit) {
	old = e.def
	l, b, w := &def.Limit, e.bucket(), e.window()
	switch {
	case old.Algorithm != l.Algorithm:
		*e = entry{def: def}
		return old
	case l.Algorithm == Concurrency:
		def.held, old.held = old.held, nil // the leases stay, under the new TTL
	case l.Algorithm == TokenBucket && old.Period == l.Period:
		b.level = e.bucketLevel(now)
		b.last = max(b.last, now)
	case l.Algorithm == TokenBucket:
		tokens := e.bucketLevel(now).divCeil(uint64(old.Period))
		b.level = mul64(uint64(tokens), uint64(l.Period))
		b.last = max(b.last, now)
	case old.Period == l.Period:
	case l.Algorithm == FixedWindow || l.Algorithm == SlidingWindow:
		e.roll(now)
		w.win = now / int64(l.Period)
		w.prev = 0
	}
	e.def = def
	return old
}

func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
