package limiter

import "time"

// Calendar-month quotas count hits per UTC month; the window index is
// year*12+month-1.

func monthIndex(now int64) int64 {
	t := time.Unix(0, now).UTC()
	return int64(t.Year())*12 + int64(t.Month()) - 1
}

// monthStart returns the Unix nanoseconds at which month index m begins.
func monthStart(m int64) int64 {
	return time.Date(int(m/12), time.Month(m%12+1), 1, 0, 0, 0, 0, time.UTC).UnixNano()
}

// NextMonth is when the UTC month after t's begins: when a calendar-month
// limit counting at t empties.
func NextMonth(t time.Time) time.Time {
	return time.Unix(0, monthStart(monthIndex(t.UnixNano())+1)).UTC()
}

func (e *entry) rollMonth(now int64) {
	if w, m := e.window(), monthIndex(now); m > w.win {
		*w = windowState{win: m}
	}
}

func (e *entry) monthDecide(now, hits int64, r *Result) {
	e.rollMonth(now)
	e.countDecide(hits, monthStart(e.window().win+1)-now, r)
}
