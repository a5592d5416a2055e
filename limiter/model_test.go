package limiter

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// The reference models below decide from first principles (exact rationals,
// full lists of admitted hits) so that the store's integer shortcuts are
// checked against something independent.

type model interface {
	admit(now, hits int64) bool
}

type bucketModel struct {
	lim    Limit
	tokens *big.Rat
	last   int64
}

func newBucketModel(l Limit) *bucketModel {
	return &bucketModel{lim: l, tokens: new(big.Rat).SetInt64(l.burst()), last: epoch.UnixNano()}
}

func (m *bucketModel) admit(now, hits int64) bool {
	if now > m.last {
		refill := new(big.Rat).Mul(big.NewRat(now-m.last, int64(m.lim.Period)), big.NewRat(m.lim.Limit, 1))
		m.tokens.Add(m.tokens, refill)
		if capacity := new(big.Rat).SetInt64(m.lim.burst()); m.tokens.Cmp(capacity) > 0 {
			m.tokens = capacity
		}
		m.last = now
	}
	h := new(big.Rat).SetInt64(hits)
	if m.tokens.Cmp(h) < 0 {
		return false
	}
	m.tokens.Sub(m.tokens, h)
	return true
}

type event struct{ at, hits int64 }

// windowModel keeps every admitted hit and counts them per window.
type windowModel struct {
	lim      Limit
	sliding  bool
	monthly  bool
	admitted []event
}

func (m *windowModel) windowOf(t int64) int64 {
	if m.monthly {
		u := time.Unix(0, t).UTC()
		return int64(u.Year())*12 + int64(u.Month())
	}
	return t / int64(m.lim.Period)
}

// count sums the hits admitted in window w. The admitted hits are in time
// order (admit refuses a step back) and windows only grow with time, so the
// scan goes back from the newest and stops at the first older window rather
// than reading every hit of the run at every step.
func (m *windowModel) count(w int64) int64 {
	var n int64
	for i := len(m.admitted) - 1; i >= 0; i-- {
		switch ew := m.windowOf(m.admitted[i].at); {
		case ew == w:
			n += m.admitted[i].hits
		case ew < w:
			return n
		}
	}
	return n
}

func (m *windowModel) admit(now, hits int64) bool {
	if k := len(m.admitted); k > 0 && now < m.admitted[k-1].at {
		panic("windowModel: time went back") // count relies on time order
	}
	w := m.windowOf(now)
	cur := m.count(w)
	ok := cur+hits <= m.lim.Limit
	if m.sliding {
		p := int64(m.lim.Period)
		est := big.NewRat(m.count(w-1)*(p-(now-w*p)), p)
		est.Add(est, big.NewRat(cur+hits, 1))
		ok = est.Cmp(big.NewRat(m.lim.Limit, 1)) <= 0
	}
	if ok {
		m.admitted = append(m.admitted, event{now, hits})
	}
	return ok
}

type concModel struct {
	lim    Limit
	leases map[uint64]event // id → (expires, hits)
}

func (m *concModel) held(now int64) int64 {
	var n int64
	for _, l := range m.leases {
		if l.at > now {
			n += l.hits
		}
	}
	return n
}

func (m *concModel) admit(now, hits int64) bool {
	return m.held(now)+hits <= m.lim.Limit
}

func randomLimit(rng *rand.Rand, alg Algorithm) Limit {
	periods := []time.Duration{time.Second, 7 * time.Second, time.Minute, time.Hour}
	l := Limit{Name: "l", Algorithm: alg, Limit: 1 + rng.Int64N(50), Period: periods[rng.IntN(len(periods))]}
	if alg == TokenBucket && rng.IntN(2) == 0 {
		l.Burst = 1 + rng.Int64N(2*l.Limit)
	}
	return l
}

// gap draws the time to the next arrival: bursts at one instant, steady
// trickles and long pauses, all relative to the period.
func gap(rng *rand.Rand, period time.Duration) time.Duration {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return time.Duration(rng.Int64N(int64(period) / 20))
	case 2:
		return time.Duration(rng.Int64N(int64(period)))
	default:
		return time.Duration(rng.Int64N(3 * int64(period)))
	}
}

func hitsFor(rng *rand.Rand) int64 {
	if rng.IntN(10) == 0 {
		return rng.Int64N(60) // sometimes more than some limits hold
	}
	return rng.Int64N(4)
}

// epoch is an arbitrary start that is not aligned to any period.
var epoch = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func TestAlgorithmsAgainstModels(t *testing.T) {
	t.Parallel()
	for _, alg := range []Algorithm{TokenBucket, FixedWindow, SlidingWindow, CalendarMonth} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(150) {
				runAgainstModel(t, alg, seed)
			}
		})
	}
}

func runAgainstModel(t *testing.T, alg Algorithm, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(alg)))
	lim := randomLimit(rng, alg)
	var m model
	switch alg {
	case TokenBucket:
		m = newBucketModel(lim)
	default:
		m = &windowModel{lim: lim, sliding: alg == SlidingWindow, monthly: alg == CalendarMonth}
	}
	period := lim.Period
	if alg == CalendarMonth {
		period = 9 * 24 * time.Hour
	}
	clock := NewManualClock(epoch)
	s := NewStore(Options{Clock: clock, Shards: 1})
	var admitted []event
	var lastDenied Result
	var lastDeniedHits int64
	for step := range 1500 {
		hits := hitsFor(rng)
		d := gap(rng, period)
		hinted, early := false, false
		if lastDenied.RetryAfter > 0 && rng.IntN(3) == 0 {
			// Arrive exactly when the store said to retry, or a nanosecond
			// before: the hint must be the exact earliest time.
			hits, d, hinted = lastDeniedHits, lastDenied.RetryAfter, true
			if rng.IntN(2) == 0 {
				d, early = d-1, true
			}
		}
		clock.Advance(d)
		now := clock.Now().UnixNano()
		r, err := s.Check("t", lim, hits)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.admit(now, hits); r.Allowed != want {
			t.Fatalf("seed %d step %d: %+v hits %d at +%s: store allowed=%v, model %v", seed, step, lim, hits, clock.Now().Sub(epoch), r.Allowed, want)
		}
		// A hint is the exact earliest time, unless it was capped at the
		// period (a bucket whose burst outruns a period's refill): then
		// it is only never late (arriving at it may be denied again).
		capped := alg == TokenBucket && lastDenied.RetryAfter == lim.Period
		if hinted && r.Allowed == early && !(capped && !early) {
			t.Fatalf("seed %d step %d: %+v retry_after %s was not exact (early=%v, allowed=%v)", seed, step, lim, lastDenied.RetryAfter, early, r.Allowed)
		}
		if r.Allowed {
			admitted = append(admitted, event{now, hits})
			lastDenied = Result{}
		} else {
			lastDenied, lastDeniedHits = r, hits
		}
		assertSane(t, seed, step, r)
	}
	checkBounds(t, seed, lim, admitted)
}

// checkBounds asserts the admission bound each algorithm promises.
func assertSane(t *testing.T, seed uint64, step int, r Result) {
	t.Helper()
	if r.Remaining < 0 || r.ResetAfter < 0 || r.RetryAfter < 0 || (r.Allowed && r.RetryAfter != 0) {
		t.Fatalf("seed %d step %d: out of range: %+v", seed, step, r)
	}
}

func checkBounds(t *testing.T, seed uint64, lim Limit, admitted []event) {
	t.Helper()
	p := int64(lim.Period)
	switch lim.Algorithm {
	case TokenBucket:
		// Any closed interval of one period: the burst plus one period's refill.
		assertSlidingMax(t, seed, admitted, p, lim.burst()+lim.Limit)
	case FixedWindow, SlidingWindow:
		assertAlignedMax(t, seed, admitted, func(at int64) int64 { return at / p }, lim.Limit)
		// The weighted estimate can let a sliding window see up to twice
		// the limit when the previous window's hits came at its very end;
		// a fixed window can too, at the boundary.
		assertSlidingMax(t, seed, admitted, p-1, 2*lim.Limit)
	case CalendarMonth:
		assertAlignedMax(t, seed, admitted, monthIndex, lim.Limit)
	}
}

func assertSlidingMax(t *testing.T, seed uint64, admitted []event, span, most int64) {
	t.Helper()
	var sum int64
	lo := 0
	for _, e := range admitted {
		sum += e.hits
		for admitted[lo].at < e.at-span {
			sum -= admitted[lo].hits
			lo++
		}
		if sum > most {
			t.Fatalf("seed %d: %d hits admitted within %s ending at %d, bound %d", seed, sum, time.Duration(span), e.at, most)
		}
	}
}

func assertAlignedMax(t *testing.T, seed uint64, admitted []event, window func(int64) int64, most int64) {
	t.Helper()
	per := map[int64]int64{}
	for _, e := range admitted {
		w := window(e.at)
		per[w] += e.hits
		if per[w] > most {
			t.Fatalf("seed %d: %d hits admitted in window %d, bound %d", seed, per[w], w, most)
		}
	}
}

func TestConcurrencyAgainstModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(150) {
		rng := rand.New(rand.NewPCG(seed, 99))
		lim := randomLimit(rng, Concurrency)
		lim.Limit = 1 + rng.Int64N(8)
		clock := NewManualClock(epoch)
		s := NewStore(Options{Clock: clock, Shards: 1})
		m := &concModel{lim: lim, leases: map[uint64]event{}}
		var denied Result
		var deniedHits int64
		for step := range 1000 {
			d, hits := gap(rng, lim.Period/4), rng.Int64N(lim.Limit+2)
			hinted, early := false, false
			if denied.RetryAfter > 0 && rng.IntN(3) == 0 {
				// The hint must be the exact time enough leases expire.
				d, hits, hinted = denied.RetryAfter, deniedHits, true
				if rng.IntN(2) == 0 {
					d, early = d-1, true
				}
			}
			clock.Advance(d)
			now := clock.Now().UnixNano()
			if !hinted && len(m.leases) > 0 && rng.IntN(3) == 0 {
				for id := range m.leases {
					if err := s.Adjust("t", []Adjustment{{Limit: lim, Lease: id}}); err != nil {
						t.Fatal(err)
					}
					delete(m.leases, id)
					break
				}
				denied = Result{}
				continue
			}
			r, err := s.Check("t", lim, hits)
			if err != nil {
				t.Fatal(err)
			}
			if want := m.admit(now, hits); r.Allowed != want {
				t.Fatalf("seed %d step %d: allowed=%v, model %v (held %d of %d, hits %d)", seed, step, r.Allowed, want, m.held(now), lim.Limit, hits)
			}
			if hinted && r.Allowed == early {
				t.Fatalf("seed %d step %d: retry_after %s not exact (early=%v allowed=%v)", seed, step, denied.RetryAfter, early, r.Allowed)
			}
			assertSane(t, seed, step, r)
			denied, deniedHits = Result{}, 0
			if !r.Allowed {
				denied, deniedHits = r, hits
			}
			if r.Allowed && hits > 0 {
				if r.Lease == 0 || m.leases[r.Lease].hits != 0 {
					t.Fatalf("seed %d step %d: lease %d not new", seed, step, r.Lease)
				}
				m.leases[r.Lease] = event{now + int64(lim.Period), hits}
			}
			if held := m.held(now); held > lim.Limit {
				t.Fatalf("seed %d step %d: %d held, limit %d", seed, step, held, lim.Limit)
			}
		}
	}
}

func TestModelsCatchAWrongAlgorithm(t *testing.T) {
	t.Parallel()
	// The models must be able to fail: a bucket model with twice the rate
	// disagrees with the store quickly.
	lim := Limit{Name: "l", Limit: 10, Period: time.Second}
	wrong := newBucketModel(Limit{Name: "l", Limit: 20, Period: time.Second, Burst: 10})
	clock := NewManualClock(epoch)
	s := NewStore(Options{Clock: clock})
	for range 100 {
		clock.Advance(50 * time.Millisecond)
		r, _ := s.Check("t", lim, 1)
		if r.Allowed != wrong.admit(clock.Now().UnixNano(), 1) {
			return
		}
	}
	t.Fatal("a model with twice the rate never disagreed")
}
