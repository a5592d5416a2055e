package limiter

import (
	"errors"
	"fmt"
	"time"
)

// Algorithm selects how a limit counts hits.
type Algorithm uint8

// The algorithms. TokenBucket is the zero value and the default.
const (
	// TokenBucket refills Limit tokens per Period continuously and holds at
	// most Burst tokens.
	TokenBucket Algorithm = iota
	// SlidingWindow weighs the previous fixed window by how much of it still
	// overlaps the sliding one (the two-window approximation).
	SlidingWindow
	// FixedWindow counts hits in windows aligned to multiples of Period.
	FixedWindow
	// Concurrency hands out leases; each admitted hit holds one until it is
	// released or its Period (the lease TTL) runs out.
	Concurrency
	// CalendarMonth counts hits per UTC calendar month; Period is unused.
	CalendarMonth
)

var algorithmNames = [...]string{
	TokenBucket:   "token_bucket",
	SlidingWindow: "sliding_window",
	FixedWindow:   "fixed_window",
	Concurrency:   "concurrency",
	CalendarMonth: "calendar_month",
}

// String returns the algorithm's wire name, e.g. "token_bucket".
func (a Algorithm) String() string {
	if int(a) < len(algorithmNames) {
		return algorithmNames[a]
	}
	return fmt.Sprintf("algorithm(%d)", a)
}

// ParseAlgorithm maps a wire name to an Algorithm; "" means TokenBucket.
func ParseAlgorithm(s string) (Algorithm, error) {
	if s == "" {
		return TokenBucket, nil
	}
	for a, name := range algorithmNames {
		if name == s {
			return Algorithm(a), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want one of token_bucket, sliding_window, fixed_window, concurrency, calendar_month)", ErrUnknownAlgorithm, s)
}

// MaxPeriod is the longest period a limit may have.
const MaxPeriod = 366 * 24 * time.Hour

var (
	// ErrUnknownAlgorithm means an algorithm name or value is not one of ours.
	ErrUnknownAlgorithm = errors.New("unknown algorithm")
	// ErrInvalidLimit means a limit's fields are out of range.
	ErrInvalidLimit = errors.New("invalid limit")
	// ErrInvalidHits means a hit count is negative.
	ErrInvalidHits = errors.New("invalid hits")
)

// Limit describes one limit of a tenant. The store keys its state by tenant
// and Name; a later check that changes the other fields reshapes that state
// conservatively (nothing consumed is forgotten).
type Limit struct {
	Name      string
	Algorithm Algorithm
	// Limit is the number of hits per Period (token bucket, windows), the
	// number of concurrent leases, or the hits per calendar month.
	Limit int64
	// Period is the refill period or window length; for Concurrency the
	// lease TTL; unused by CalendarMonth.
	Period time.Duration
	// Burst is the token bucket's capacity; 0 means Limit. Other
	// algorithms ignore it.
	Burst int64
}

// LimitError says which field of a Limit is out of range. It wraps
// ErrInvalidLimit, or ErrUnknownAlgorithm for the algorithm.
type LimitError struct {
	Field  string // "name", "algorithm", "limit", "period" or "burst"
	Reason string
}

func (e *LimitError) Error() string { return "invalid limit: " + e.Field + ": " + e.Reason }

// Unwrap returns the sentinel the error belongs to.
func (e *LimitError) Unwrap() error {
	if e.Field == "algorithm" {
		return ErrUnknownAlgorithm
	}
	return ErrInvalidLimit
}

func limitErr(field, format string, args ...any) error {
	return &LimitError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports the first field that is out of range as a *LimitError.
func (l *Limit) Validate() error {
	switch {
	case l.Name == "":
		return limitErr("name", "must not be empty")
	case int(l.Algorithm) >= len(algorithmNames):
		return limitErr("algorithm", "unknown algorithm %d", l.Algorithm)
	case l.Limit <= 0:
		return limitErr("limit", "must be > 0, got %d", l.Limit)
	case l.Burst < 0:
		return limitErr("burst", "must be >= 0, got %d", l.Burst)
	case l.Algorithm == Concurrency && l.Limit > MaxConcurrency:
		return limitErr("limit", "a concurrency limit is at most %d, got %d", MaxConcurrency, l.Limit)
	case l.Algorithm == CalendarMonth && l.Period == 0:
		return nil // months have their own length
	case l.Period <= 0:
		return limitErr("period", "must be > 0, got %s", l.Period)
	case l.Period > MaxPeriod:
		return limitErr("period", "must be at most %s, got %s", MaxPeriod, l.Period)
	}
	return nil
}

// sameShape reports whether l and o agree in everything but their names.
func (l *Limit) sameShape(o *Limit) bool {
	return l.Algorithm == o.Algorithm && l.Limit == o.Limit && l.Period == o.Period && l.Burst == o.Burst
}

// Capacity is the most hits one decision can ever admit: the token
// bucket's burst, or Limit for the other algorithms.
func (l *Limit) Capacity() int64 {
	if l.Algorithm == TokenBucket {
		return l.burst()
	}
	return l.Limit
}

// burst is the token bucket capacity.
func (l *Limit) burst() int64 {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Limit
}

// Result is the decision for one limit.
type Result struct {
	// Allowed says whether this limit alone would admit the hits. In a
	// reservation nothing is consumed unless every limit allows.
	Allowed bool
	Limit   int64
	// Remaining is what is left after this decision.
	Remaining int64
	// ResetAfter is how long until the limit is back to full, if no more
	// hits arrive.
	ResetAfter time.Duration
	// RetryAfter is how long until the same hits would be admitted, when
	// denied. Zero on a denial means the hits exceed what the limit can ever
	// admit at once.
	RetryAfter time.Duration
	// Lease identifies the lease a Concurrency limit handed out; pass it
	// back in an Adjustment to release it.
	Lease uint64
	// Window identifies the window (or month) the hits were counted in, so
	// that an Adjustment refunds the right one.
	Window int64
}

// Request asks for Hits against one Limit.
type Request struct {
	Limit Limit
	Hits  int64
}

// Adjustment settles an earlier reservation of one limit.
type Adjustment struct {
	Limit Limit
	// Delta is added to what was consumed: negative refunds, positive
	// charges beyond the limit (a token bucket goes into debt that delays
	// the next admissions). Refunds never fill a limit past full.
	Delta int64
	// Lease releases a Concurrency lease when non-zero.
	Lease uint64
	// Window is Result.Window of the reservation; refunds to a window or
	// month that has already closed are dropped.
	Window int64
}
