package limiter

import "time"

// A concurrency limit admits while the hits held by unexpired leases stay
// within Limit. Leases expire Period after they were taken, so a holder that
// dies leaks nothing for long.

type lease struct {
	id      uint64
	hits    int64
	expires int64
}

// purge drops expired leases and returns the hits still held.
func (e *entry) purge(now int64) int64 {
	var held int64
	kept := e.leases[:0]
	for _, l := range e.leases {
		if l.expires > now {
			kept = append(kept, l)
			held += l.hits
		}
	}
	clear(e.leases[len(kept):])
	e.leases = kept
	return held
}

func (e *entry) concDecide(now, hits int64) Result {
	held := e.purge(now)
	limit := e.lim.Limit
	r := Result{Limit: limit}
	var first, last int64
	for i, l := range e.leases {
		if i == 0 || l.expires < first {
			first = l.expires
		}
		last = max(last, l.expires)
	}
	if hits <= limit-held {
		r.Allowed = true
		r.Remaining = limit - held - hits
		if hits > 0 {
			last = now + int64(e.lim.Period)
		}
		r.ResetAfter = time.Duration(max(last-now, 0))
		return r
	}
	r.Remaining = max(limit-held, 0)
	r.ResetAfter = time.Duration(last - now)
	if hits <= limit {
		r.RetryAfter = time.Duration(first - now)
	}
	return r
}

func (e *entry) concTake(now, hits int64, id uint64) {
	if hits > 0 {
		e.leases = append(e.leases, lease{id: id, hits: hits, expires: now + int64(e.lim.Period)})
	}
}

// concRelease ends a lease; an unknown or expired id is a no-op, so a
// release that arrives twice is harmless.
func (e *entry) concRelease(id uint64) {
	for i, l := range e.leases {
		if l.id == id {
			e.leases = append(e.leases[:i], e.leases[i+1:]...)
			return
		}
	}
}
