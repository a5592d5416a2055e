package limiter

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// sameDecision compares results, ignoring lease ids: each store numbers its
// own leases.
func sameDecision(a, b Result) bool {
	a.Lease, b.Lease = 0, 0
	return a == b
}

func TestTakeThenMergeHandsOffEachAlgorithm(t *testing.T) {
	t.Parallel()
	hour := func(a Algorithm) Limit { return Limit{Name: "l", Algorithm: a, Limit: 10, Period: time.Hour} }
	cases := []struct {
		lim  Limit
		uses []int64 // hits consumed, one check each
		next time.Duration
		more int64 // single hits admitted after the hand-off
	}{
		{lim: hour(TokenBucket), uses: []int64{3, 5}, more: 2},
		{lim: hour(FixedWindow), uses: []int64{3, 5}, more: 2},
		{lim: hour(CalendarMonth), uses: []int64{3, 5}, more: 2},
		{lim: hour(Concurrency), uses: []int64{3, 5}, more: 2},
		{lim: hour(SlidingWindow), uses: []int64{3, 5}, more: 2},
		// 4 in the previous minute, weighted by the 33.46s of it the
		// sliding minute still covers (epoch is 26.54s into its minute),
		// count as 2.23: 3 more fit.
		{lim: Limit{Name: "l", Algorithm: SlidingWindow, Limit: 10, Period: time.Minute}, uses: []int64{4, 4}, next: time.Minute, more: 3},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.lim.Algorithm, "/", c.lim.Period), func(t *testing.T) {
			clock := NewManualClock(epoch)
			a, b := NewStore(Options{Clock: clock}), NewStore(Options{Clock: clock})
			control := NewStore(Options{Clock: clock}) // never hands off
			for i, hits := range c.uses {
				if i > 0 {
					clock.Advance(c.next)
				}
				mustCheck(t, a, "acme", c.lim, hits)
				mustCheck(t, control, "acme", c.lim, hits)
			}
			states := a.Take("acme")
			if len(states) != 1 || a.Len() != 0 || a.Export("acme") != nil {
				t.Fatalf("after Take: %d states, A holds %d entries", len(states), a.Len())
			}
			if r := mustCheck(t, a, "acme", c.lim, 0); r.Remaining != 10 {
				t.Fatalf("A still counts the tenant after Take: %+v", r)
			}
			if err := b.Merge("acme", states); err != nil {
				t.Fatal(err)
			}
			admitted := int64(0)
			for {
				rb, rc := mustCheck(t, b, "acme", c.lim, 1), mustCheck(t, control, "acme", c.lim, 1)
				if !sameDecision(rb, rc) {
					t.Fatalf("after %d more: B decided %+v, the store that kept the state %+v", admitted, rb, rc)
				}
				if !rb.Allowed {
					break
				}
				admitted++
			}
			if admitted != c.more {
				t.Fatalf("B admitted %d more, want %d", admitted, c.more)
			}
		})
	}
}

// TestHandOffIsInvisible passes a tenant back and forth between two stores
// at random moments while a control store keeps it throughout: every
// decision, and every lease release, must come out the same.
func TestHandOffIsInvisible(t *testing.T) {
	t.Parallel()
	for _, alg := range []Algorithm{TokenBucket, FixedWindow, SlidingWindow, CalendarMonth, Concurrency} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(40) {
				runHandOff(t, alg, seed)
			}
		})
	}
}

func runHandOff(t *testing.T, alg Algorithm, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7+uint64(alg)))
	lim := randomLimit(rng, alg)
	period := lim.Period
	if alg == CalendarMonth {
		period = 9 * 24 * time.Hour
	}
	clock := NewManualClock(epoch)
	owner, other := NewStore(Options{Clock: clock}), NewStore(Options{Clock: clock})
	control := NewStore(Options{Clock: clock})
	leases := map[uint64]uint64{} // control's lease id → owner's
	for step := range 300 {
		clock.Advance(gap(rng, period))
		if rng.IntN(5) == 0 {
			if err := other.Merge("t", owner.Take("t")); err != nil {
				t.Fatal(err)
			}
			owner, other = other, owner
		}
		if alg == Concurrency && len(leases) > 0 && rng.IntN(3) == 0 {
			for c, o := range leases {
				_ = control.Adjust("t", []Adjustment{{Limit: lim, Lease: c}})
				_ = owner.Adjust("t", []Adjustment{{Limit: lim, Lease: o}})
				delete(leases, c)
				break
			}
		}
		hits := hitsFor(rng)
		got, want := mustCheck(t, owner, "t", lim, hits), mustCheck(t, control, "t", lim, hits)
		if !sameDecision(got, want) {
			t.Fatalf("seed %d step %d: %+v hits %d: handed-off store decided %+v, control %+v", seed, step, lim, hits, got, want)
		}
		if want.Lease != 0 {
			leases[want.Lease] = got.Lease
		}
	}
}

// The source consumes 6 and the destination 3 at the same instant, so which
// side is more consumed is known exactly.
func TestMergeIsConservativeAndIdempotent(t *testing.T) {
	t.Parallel()
	for _, alg := range []Algorithm{TokenBucket, FixedWindow, SlidingWindow, CalendarMonth} {
		t.Run(alg.String(), func(t *testing.T) {
			lim := Limit{Name: "l", Algorithm: alg, Limit: 10, Period: time.Hour}
			src, _ := newTestStore(Options{})
			dst, _ := newTestStore(Options{})
			mustCheck(t, src, "t", lim, 6)
			stale := src.Export("t")
			mustCheck(t, dst, "t", lim, 3)

			remaining := func(when string, want int64) {
				t.Helper()
				if r := mustCheck(t, dst, "t", lim, 0); r.Remaining != want {
					t.Fatalf("%s: remaining %d, want %d", when, r.Remaining, want)
				}
			}
			mustMerge(t, dst, "t", stale)
			remaining("more consumed state merged into less consumed", 4)
			mustMerge(t, dst, "t", stale)
			remaining("same state merged twice", 4)
			mustCheck(t, dst, "t", lim, 3)
			mustMerge(t, dst, "t", stale)
			remaining("stale state merged into a bucket that consumed more since", 1)
			if r := mustCheck(t, src, "t", lim, 0); r.Remaining != 4 {
				t.Fatalf("Export changed the source: %+v", r)
			}
		})
	}
}

func mustMerge(t *testing.T, s *Store, tenant string, states []EntryState) {
	t.Helper()
	if err := s.Merge(tenant, states); err != nil {
		t.Fatal(err)
	}
}

func TestMergeUnitesLeasesByID(t *testing.T) {
	t.Parallel()
	c := Limit{Name: "c", Algorithm: Concurrency, Limit: 10, Period: time.Minute}
	src, clock := newTestStore(Options{})
	dst := NewStore(Options{Clock: clock})
	mustCheck(t, src, "t", c, 2)
	clock.Advance(10 * time.Second)
	handed := mustCheck(t, src, "t", c, 4)
	local := mustCheck(t, dst, "t", c, 3)
	states := src.Export("t")

	mustMerge(t, dst, "t", states)
	mustMerge(t, dst, "t", states)
	if r := mustCheck(t, dst, "t", c, 0); r.Remaining != 1 {
		t.Fatalf("after merging twice: remaining %d, want 1 (3 local + 6 handed over)", r.Remaining)
	}
	// The handed-over 2-hit lease expires first, 50s from now: merged
	// leases must keep expiry order for the retry hint to find it.
	if r := mustCheck(t, dst, "t", c, 3); r.Allowed || r.RetryAfter != 50*time.Second {
		t.Fatalf("3 more hits: %+v, want denied with retry after 50s", r)
	}
	// Releases name leases of either node.
	_ = dst.Adjust("t", []Adjustment{{Limit: c, Lease: handed.Lease}, {Limit: c, Lease: local.Lease}})
	if r := mustCheck(t, dst, "t", c, 0); r.Remaining != 8 {
		t.Fatalf("after releases: remaining %d, want 8", r.Remaining)
	}
	// Handed-over leases expire when they would have on the source.
	clock.Advance(50 * time.Second)
	if r := mustCheck(t, dst, "t", c, 0); r.Remaining != 10 {
		t.Fatalf("handed-over lease outlived its TTL: remaining %d, want 10", r.Remaining)
	}
	// Merged again, the stale state brings back the 4-hit lease released
	// above: a hand-off cannot tell a released lease from one not yet
	// taken, so it errs on the consumed side.
	mustMerge(t, dst, "t", states)
	if r := mustCheck(t, dst, "t", c, 0); r.Remaining != 6 {
		t.Fatalf("stale leases merged: remaining %d, want 6", r.Remaining)
	}
}

func TestMergeRefillsAcrossClockAdvance(t *testing.T) {
	t.Parallel()
	// 10s into a minute, so 30s later is the same minute and 60s the next.
	start := time.Date(2026, 3, 14, 15, 9, 10, 0, time.UTC)
	cases := []struct {
		alg        Algorithm
		used       int64
		after      time.Duration
		start      time.Time
		remainingB int64
	}{
		{TokenBucket, 10, 30 * time.Second, start, 5},
		{TokenBucket, 10, 31*time.Second + 500*time.Millisecond, start, 5},
		{FixedWindow, 8, 30 * time.Second, start, 2},
		{FixedWindow, 8, 60 * time.Second, start, 10},
		{SlidingWindow, 8, 30 * time.Second, start, 2},
		// 8 × 50/60 of the previous minute still counts: 6.67.
		{SlidingWindow, 8, 60 * time.Second, start, 3},
		{CalendarMonth, 8, 30 * time.Second, start, 2},
		{CalendarMonth, 8, 30 * time.Second, time.Date(2026, 3, 31, 23, 59, 50, 0, time.UTC), 10},
	}
	for _, c := range cases {
		lim := Limit{Name: "l", Algorithm: c.alg, Limit: 10, Period: time.Minute}
		clock := NewManualClock(c.start)
		src, dst := NewStore(Options{Clock: clock}), NewStore(Options{Clock: clock})
		mustCheck(t, src, "t", lim, c.used)
		states := src.Export("t")
		clock.Advance(c.after)
		mustMerge(t, dst, "t", states)
		if r := mustCheck(t, dst, "t", lim, 0); r.Remaining != c.remainingB {
			t.Errorf("%s: %d used, merged %s later: remaining %d, want %d", c.alg, c.used, c.after, r.Remaining, c.remainingB)
		}
	}
}

func TestMergeKeepsTheLocalDefinition(t *testing.T) {
	t.Parallel()
	src, clock := newTestStore(Options{})
	dst := NewStore(Options{Clock: clock})
	perMinute := Limit{Name: "l", Limit: 10, Period: time.Minute}
	perTwo := Limit{Name: "l", Limit: 20, Period: 2 * time.Minute}
	mustCheck(t, src, "t", perMinute, 7)
	mustCheck(t, dst, "t", perTwo, 0)
	states := src.Export("t")
	// 31s refill 5.17 of the 7 tokens: 1.83 left, which round up to 2
	// whole tokens under the local definition.
	clock.Advance(31 * time.Second)
	mustMerge(t, dst, "t", states)
	if r := mustCheck(t, dst, "t", perTwo, 0); r.Remaining != 18 {
		t.Fatalf("converted bucket: remaining %d, want 18", r.Remaining)
	}

	// A limit held under another algorithm is left as it is, even by a
	// state that carries counts its own algorithm would not use.
	asWindow := perMinute
	asWindow.Algorithm = FixedWindow
	r := mustCheck(t, dst, "w", asWindow, 1)
	odd := []EntryState{{Limit: perMinute, Window: r.Window, Current: 8}}
	mustMerge(t, dst, "w", odd)
	if r := mustCheck(t, dst, "w", asWindow, 0); r.Remaining != 9 {
		t.Fatalf("merge across algorithms changed the window: remaining %d, want 9", r.Remaining)
	}

	// Window indexes mean different spans under different periods, so only
	// the current count crosses, as when a check reshapes the window: the
	// 8 hits of the minute before count for nothing in a 2-minute window.
	slideMinute := Limit{Name: "s", Algorithm: SlidingWindow, Limit: 10, Period: time.Minute}
	slideTwo := Limit{Name: "s", Algorithm: SlidingWindow, Limit: 10, Period: 2 * time.Minute}
	mustCheck(t, src, "t", slideMinute, 8)
	clock.Advance(time.Minute)
	mustCheck(t, src, "t", slideMinute, 1)
	mustCheck(t, dst, "t", slideTwo, 0)
	mustMerge(t, dst, "t", src.Export("t"))
	if r := mustCheck(t, dst, "t", slideTwo, 0); r.Remaining != 9 {
		t.Fatalf("window across periods: remaining %d, want 9", r.Remaining)
	}
}

func TestMergeRejectsInvalidStates(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	mustCheck(t, s, "t", rpm, 3)
	src, _ := newTestStore(Options{})
	mustCheck(t, src, "t", rpm, 6)
	valid := src.Export("t")[0]

	bad := func(edit func(*EntryState)) EntryState {
		st := valid
		st.Limit.Name = "other"
		edit(&st)
		return st
	}
	cases := []struct {
		tenant string
		state  EntryState
		want   error
	}{
		{"t", bad(func(st *EntryState) { st.Limit.Limit = 0 }), ErrInvalidLimit},
		{"t", bad(func(st *EntryState) { st.Limit.Name = "" }), ErrInvalidLimit},
		{"t", bad(func(st *EntryState) { st.Limit.Algorithm = 42 }), ErrUnknownAlgorithm},
		{"", valid, ErrInvalidLimit},
		{"t", bad(func(st *EntryState) { st.Current = -5 }), ErrInvalidState},
		{"t", bad(func(st *EntryState) { st.Leases = []LeaseState{{ID: 1, Hits: -3, Expires: 1 << 62}} }), ErrInvalidState},
	}
	for i, c := range cases {
		// The valid state first: it must not be merged either.
		if err := s.Merge(c.tenant, []EntryState{valid, c.state}); !errors.Is(err, c.want) {
			t.Errorf("case %d: %v, want %v", i, err, c.want)
		}
	}
	if r := mustCheck(t, s, "t", rpm, 0); s.Len() != 1 || r.Remaining != 7 {
		t.Fatalf("a rejected merge changed the store: %d entries, remaining %d", s.Len(), r.Remaining)
	}
}

func TestExportAndTakeOfUnknownTenant(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	mustCheck(t, s, "known", rpm, 1)
	if got := s.Take("unknown"); got != nil {
		t.Fatalf("Take of an unknown tenant: %+v", got)
	}
	if got := s.Export("unknown"); got != nil {
		t.Fatalf("Export of an unknown tenant: %+v", got)
	}
	if s.Len() != 1 {
		t.Fatalf("len %d, want 1", s.Len())
	}
}

func TestMergeClonesNames(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	buf := []byte("tenant-a/limit-a")
	// Views into a request buffer that is reused once Merge returns.
	tenant, name := unsafe.String(&buf[0], 8), unsafe.String(&buf[9], 7)
	mustMerge(t, s, tenant, []EntryState{{Limit: Limit{Name: name, Limit: 10, Period: time.Hour}}})
	copy(buf, "XXXXXXXXXXXXXXXX")
	states := s.Export("tenant-a")
	if len(states) != 1 || states[0].Limit.Name != "limit-a" {
		t.Fatalf("stored names alias the caller's buffer: %+v", states)
	}
	s.Tenants(func(got string) bool {
		if got != "tenant-a" {
			t.Errorf("tenant name %q aliases the caller's buffer", got)
		}
		return true
	})
}

func TestMergeRespectsMaxEntries(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{Shards: 1, MaxEntries: 3})
	for i := range 3 {
		mustCheck(t, s, fmt.Sprint("t", i), rpm, 1)
		clock.Advance(time.Millisecond)
	}
	states := []EntryState{{Limit: rpm, LevelLo: uint64(4 * time.Minute), Last: clock.Now().UnixNano()}}
	mustMerge(t, s, "new", states)
	if s.Len() != 3 || s.Evictions() != 1 {
		t.Fatalf("len %d evictions %d, want 3 and 1", s.Len(), s.Evictions())
	}
	if r := mustCheck(t, s, "new", rpm, 0); r.Remaining != 6 {
		t.Fatalf("merged tenant: remaining %d, want 6", r.Remaining)
	}
}

func TestTenantsVisitsEachTenantOnce(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	for i := range 300 {
		mustCheck(t, s, fmt.Sprint("t", i), rpm, 1)
		mustCheck(t, s, fmt.Sprint("t", i), tpm, 1) // two entries, one tenant
	}
	seen := map[string]int{}
	s.Tenants(func(tenant string) bool { seen[tenant]++; return true })
	for i := range 300 {
		if n := seen[fmt.Sprint("t", i)]; n != 1 {
			t.Fatalf("t%d visited %d times", i, n)
		}
	}
	if len(seen) != 300 {
		t.Fatalf("visited %d tenants, want 300", len(seen))
	}
	calls := 0
	s.Tenants(func(string) bool { calls++; return calls < 3 })
	if calls != 3 {
		t.Fatalf("fn called %d times after asking to stop at 3", calls)
	}
}

// TestHandOffUnderLoad races merges of a 60-hit state against checks, and
// Take, Merge and Tenants against each other, for the race detector. The
// checks must find room for between 40 hits (merges first) and 100 (checks
// first): a merge that added instead of taking the larger would leave less.
func TestHandOffUnderLoad(t *testing.T) {
	t.Parallel()
	src, clock := newTestStore(Options{})
	dst := NewStore(Options{Clock: clock})
	hourly := Limit{Name: "h", Limit: 100, Period: time.Hour}
	mustCheck(t, src, "t", hourly, 60)
	states := src.Export("t")
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for range 4 {
		wg.Go(func() {
			for range 50 {
				_ = dst.Merge("t", states)
				_ = src.Merge("t", src.Take("t"))
				src.Tenants(func(string) bool { return true })
			}
		})
		wg.Go(func() {
			for range 50 {
				if r, _ := dst.Check("t", hourly, 1); r.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// 200 checks of one hit against a limit of 100 always end up full.
	r := mustCheck(t, dst, "t", hourly, 0)
	if n := admitted.Load(); n < 40 || n > 100 || r.Remaining != 0 {
		t.Fatalf("admitted %d, remaining %d; want 40 to 100 and 0", n, r.Remaining)
	}
}

func TestSealRefusesDecisionsUntilTheStateReturns(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(epoch)
	a := NewStore(Options{Clock: clock})
	l := Limit{Name: "rpm", Limit: 10, Period: time.Hour}
	for range 8 {
		if _, err := a.Check("t", l, 1); err != nil {
			t.Fatal(err)
		}
	}
	states := a.Seal("t")
	if len(states) != 1 || a.Len() != 0 {
		t.Fatalf("sealed: %d states, %d entries", len(states), a.Len())
	}
	if _, err := a.Check("t", l, 1); !errors.Is(err, ErrMoved) {
		t.Fatalf("check on a sealed tenant: %v", err)
	}
	if _, err := a.Reserve("t", []Request{{Limit: l, Hits: 1}}, make([]Result, 1)); !errors.Is(err, ErrMoved) {
		t.Fatalf("reserve on a sealed tenant: %v", err)
	}
	if err := a.Adjust("t", []Adjustment{{Limit: l, Delta: -1}}); !errors.Is(err, ErrMoved) {
		t.Fatalf("adjust on a sealed tenant: %v", err)
	}
	visited := 0
	a.Tenants(func(string) bool { visited++; return true })
	if visited != 0 {
		t.Fatalf("Tenants visits a sealed tenant")
	}
	// The state coming back unseals it, with its count.
	if err := a.Merge("t", states); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Check("t", l, 0); err != nil || r.Remaining != 2 {
		t.Fatalf("after the state came back: %+v %v", r, err)
	}
	// Sealing a tenant the store never held blocks a fresh start too;
	// Unseal lifts it.
	a.Seal("u")
	if _, err := a.Check("u", l, 1); !errors.Is(err, ErrMoved) {
		t.Fatalf("check on a sealed unknown tenant: %v", err)
	}
	a.Unseal("u")
	if r, err := a.Check("u", l, 1); err != nil || r.Remaining != 9 {
		t.Fatalf("after Unseal: %+v %v", r, err)
	}
}
