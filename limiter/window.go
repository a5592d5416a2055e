package limiter

import "time"

// Fixed and sliding windows are aligned to multiples of Period since the
// Unix epoch, so every node agrees where a window starts.

// roll moves the counters to the window that contains now. A clock that
// went backwards leaves them where they are.
func (e *entry) roll(now int64) {
	st := e.window()
	w := now / int64(e.lim().Period)
	switch {
	case w == st.win+1:
		st.prev, st.cur = st.cur, 0
	case w > st.win:
		st.prev, st.cur = 0, 0
	default:
		return
	}
	st.win = w
}

func (e *entry) fixedDecide(now, hits int64, r *Result) {
	e.roll(now)
	e.countDecide(hits, (e.window().win+1)*int64(e.lim().Period)-now, r)
}

// countDecide decides a counter that empties when the current window ends,
// untilEnd from now.
func (e *entry) countDecide(hits, untilEnd int64, r *Result) {
	w, limit := e.window(), e.lim().Limit
	*r = Result{Limit: limit, Window: w.win}
	if hits <= limit-w.cur {
		r.Allowed = true
		r.Remaining = limit - w.cur - hits
		if w.cur+hits > 0 {
			r.ResetAfter = time.Duration(untilEnd)
		}
		return
	}
	r.Remaining = max(limit-w.cur, 0)
	r.ResetAfter = time.Duration(untilEnd)
	if hits <= limit {
		r.RetryAfter = time.Duration(untilEnd)
	}
}

// slidingDecide estimates the hits in the sliding window ending now as the
// current window's count plus the previous one's, weighted by the share of
// it the sliding window still covers, and admits while that stays within
// Limit. In integers: prev×(P−elapsed) + (cur+hits)×P ≤ Limit×P.
func (e *entry) slidingDecide(now, hits int64, r *Result) {
	e.roll(now)
	w, lim := e.window(), e.lim()
	p, limit := int64(lim.Period), lim.Limit
	elapsed := now - w.win*p
	weighted := mul64(uint64(w.prev), uint64(p-elapsed))
	capacity := mul64(uint64(limit), uint64(p))
	used := weighted.add(mul64(uint64(w.cur), uint64(p)))

	*r = Result{Limit: limit, Window: w.win}
	if hits <= limit && used.add(mul64(uint64(hits), uint64(p))).cmp(capacity) <= 0 {
		r.Allowed = true
		r.Remaining = capacity.sub(used).div(uint64(p)) - hits
		r.ResetAfter = e.slidingReset(now, w.cur+hits)
		return
	}
	r.Remaining = capacity.sub(used).div(uint64(p))
	r.ResetAfter = e.slidingReset(now, w.cur)
	if hits > limit {
		return
	}
	if w.cur <= limit-hits {
		// Only the previous window's weight is in the way: wait for it to
		// slide out far enough.
		r.RetryAfter = time.Duration(slideOut(w.prev, limit-w.cur-hits, p) - elapsed)
	} else {
		// Wait for the next window, where today's count becomes the
		// weighted one.
		r.RetryAfter = time.Duration(p - elapsed + slideOut(w.cur, limit-hits, p))
	}
}

// slideOut returns the smallest elapsed time e in a window of length p at
// which prev×(p−e) ≤ room×p.
func slideOut(prev, room, p int64) int64 {
	if prev <= room {
		return 0
	}
	return p - mul64(uint64(room), uint64(p)).div(uint64(prev))
}

func (e *entry) slidingReset(now, cur int64) time.Duration {
	w, p := e.window(), int64(e.lim().Period)
	switch {
	case cur > 0:
		return time.Duration((w.win+2)*p - now)
	case w.prev > 0:
		return time.Duration((w.win+1)*p - now)
	}
	return 0
}
