package limiter

import "time"

// The token bucket holds its consumption as a level in token·nanoseconds:
// each hit adds Period, each nanosecond drains Limit, and the bucket admits
// while the level stays within Burst × Period. Integer arithmetic keeps it
// exact (no float drift at the boundary).

// bucketLevel is the level at now after refill.
func (e *entry) bucketLevel(now int64) u128 {
	b := e.bucket()
	if now <= b.last {
		return b.level
	}
	return b.level.sub(mul64(uint64(now-b.last), uint64(e.lim().Limit)))
}

func (e *entry) bucketDecide(now, hits int64, r *Result) {
	lim := e.lim()
	period, rate := uint64(lim.Period), uint64(lim.Limit)
	burst := lim.burst()
	capacity := mul64(uint64(burst), period)
	level := e.bucketLevel(now)
	after := level.add(mul64(uint64(hits), period))

	*r = Result{Limit: lim.Limit}
	if after.cmp(capacity) <= 0 {
		r.Allowed = true
		r.Remaining = capacity.sub(after).div(period)
		r.ResetAfter = time.Duration(after.divCeil(rate))
		return
	}
	r.Remaining = capacity.sub(level).div(period)
	r.ResetAfter = time.Duration(level.divCeil(rate))
	if hits <= burst {
		// At most one period: a caller is told to come back then, and is
		// told again if the debt has not been paid by then.
		r.RetryAfter = min(time.Duration(after.sub(capacity).divCeil(rate)), lim.Period)
	}
}

// bucketCharge adds hits, beyond the capacity if need be (debt). The
// debt is carried whole: the gateway reserves at most a minute's tokens,
// and an answer that used more must delay the tenant for all of it, or
// its tokens per minute would run past the limit.
func (e *entry) bucketCharge(now, hits int64) {
	b := e.bucket()
	b.level = e.bucketLevel(now).add(mul64(uint64(hits), uint64(e.lim().Period)))
	b.last = max(b.last, now)
}

// bucketRefund gives hits back, never past a full bucket.
func (e *entry) bucketRefund(now, hits int64) {
	b := e.bucket()
	b.level = e.bucketLevel(now).sub(mul64(uint64(hits), uint64(e.lim().Period)))
	b.last = max(b.last, now)
}
