package limiter

import (
	"math"
	"math/bits"
)

// u128 is an unsigned 128-bit integer. Token buckets keep their level in
// token·nanoseconds so refill is exact integer arithmetic; a year-long period
// times a large burst does not fit in 64 bits.
type u128 struct{ hi, lo uint64 }

func mul64(a, b uint64) u128 {
	hi, lo := bits.Mul64(a, b)
	return u128{hi, lo}
}

// add returns x+y, saturating at the maximum value.
func (x u128) add(y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, over := bits.Add64(x.hi, y.hi, carry)
	if over != 0 {
		return u128{math.MaxUint64, math.MaxUint64}
	}
	return u128{hi, lo}
}

// sub returns x-y, or zero when y > x.
func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, under := bits.Sub64(x.hi, y.hi, borrow)
	if under != 0 {
		return u128{}
	}
	return u128{hi, lo}
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

// div returns floor(x/d), saturating at MaxInt64 (all callers turn the
// quotient into a count or a duration).
func (x u128) div(d uint64) int64 {
	if x.hi >= d {
		return math.MaxInt64
	}
	q, _ := bits.Div64(x.hi, x.lo, d)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// divCeil returns ceil(x/d), saturating at MaxInt64.
func (x u128) divCeil(d uint64) int64 {
	if x.hi >= d {
		return math.MaxInt64
	}
	q, r := bits.Div64(x.hi, x.lo, d)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
