package limiter

import (
	"slices"
	"time"
)

// A concurrency limit admits while the hits held by unexpired leases stay
// within Limit. Leases expire Period after they were taken, so a holder that
// dies leaks nothing for long. Leases are kept in the order they were taken,
// which (one TTL per limit) is also the order they expire in.

// MaxConcurrency bounds a concurrency limit, and so the leases one entry
// holds and the work of one decision under the shard lock.
const MaxConcurrency = 100_000

type lease struct {
	id      uint64
	hits    int64
	expires int64
}

// leases returns the leases e holds: a concurrency entry's, in its own
// definition (see shard.intern); the others answer nil from their shared,
// cached definition.
func (e *entry) leases() []lease {
	if e.def.Algorithm != Concurrency {
		return nil
	}
	return e.def.held
}

// setLeases makes held the leases e, a concurrency entry, holds.
func (e *entry) setLeases(held []lease) { e.def.held = held }

// purge drops expired leases and returns the hits still held.
func (e *entry) purge(now int64) int64 {
	var held int64
	all := e.leases()
	kept := all[:0]
	for _, l := range all {
		if l.expires > now {
			kept = append(kept, l)
			held += l.hits
		}
	}
	clear(all[len(kept):])
	e.setLeases(kept)
	return held
}

func (e *entry) concDecide(now, hits int64, r *Result) {
	held := e.purge(now)
	leases, limit := e.leases(), e.lim().Limit
	*r = Result{Limit: limit}
	var last int64
	if n := len(leases); n > 0 {
		last = leases[n-1].expires
	}
	if hits <= limit-held {
		r.Allowed = true
		r.Remaining = limit - held - hits
		if hits > 0 {
			last = now + int64(e.lim().Period)
		}
		r.ResetAfter = time.Duration(max(last-now, 0))
		return
	}
	r.Remaining = max(limit-held, 0)
	r.ResetAfter = time.Duration(max(last-now, 0))
	if hits <= limit {
		// The earliest time enough leases have expired, if none is
		// released first.
		for _, l := range leases {
			held -= l.hits
			if hits <= limit-held {
				r.RetryAfter = time.Duration(l.expires - now)
				break
			}
		}
	}
}

func (e *entry) concTake(now, hits int64, id uint64) {
	if hits > 0 {
		// Insert in expiry order: a clock that stepped back, or a reshaped
		// TTL, can make a new lease expire before older ones.
		l := lease{id: id, hits: hits, expires: now + int64(e.lim().Period)}
		leases := e.leases()
		i := len(leases)
		for i > 0 && leases[i-1].expires > l.expires {
			i--
		}
		e.setLeases(slices.Insert(leases, i, l))
	}
}

// concRelease ends a lease; an unknown or expired id is a no-op, so a
// release that arrives twice is harmless.
func (e *entry) concRelease(id uint64) {
	for i, l := range e.leases() {
		if l.id == id {
			e.setLeases(slices.Delete(e.leases(), i, i+1))
			return
		}
	}
}
