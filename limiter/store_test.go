package limiter

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var (
	rpm = Limit{Name: "rpm", Limit: 10, Period: time.Minute}
	tpm = Limit{Name: "tpm", Limit: 1000, Period: time.Minute}
)

func newTestStore(opts Options) (*Store, *ManualClock) {
	clock := NewManualClock(epoch)
	opts.Clock = clock
	return NewStore(opts), clock
}

func mustCheck(t *testing.T, s *Store, tenant string, l Limit, hits int64) Result {
	t.Helper()
	r, err := s.Check(tenant, l, hits)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckAdmitsExactlyTheLimit(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	for i := range 10 {
		r := mustCheck(t, s, "acme", rpm, 1)
		if !r.Allowed || r.Remaining != int64(9-i) {
			t.Fatalf("check %d: %+v", i, r)
		}
	}
	r := mustCheck(t, s, "acme", rpm, 1)
	if r.Allowed || r.RetryAfter != 6*time.Second || r.Remaining != 0 {
		t.Fatalf("11th check: %+v, want denied with retry after 6s", r)
	}
	if r := mustCheck(t, s, "other", rpm, 1); !r.Allowed {
		t.Fatalf("another tenant shares the bucket: %+v", r)
	}
}

func TestReserveIsAllOrNothing(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	reqs := []Request{{Limit: rpm, Hits: 1}, {Limit: tpm, Hits: 600}}
	out := make([]Result, 2)
	if ok, err := s.Reserve("acme", reqs, out); err != nil || !ok {
		t.Fatalf("first reservation: %v %v %+v", ok, err, out)
	}
	// tpm has 400 left: this one must fail and leave rpm untouched.
	if ok, _ := s.Reserve("acme", reqs, out); ok || !out[0].Allowed || out[1].Allowed {
		t.Fatalf("second reservation: %v %+v", ok, out)
	}
	if r := mustCheck(t, s, "acme", rpm, 0); r.Remaining != 9 {
		t.Fatalf("rpm consumed by a denied reservation: remaining %d, want 9", r.Remaining)
	}
	if r := mustCheck(t, s, "acme", tpm, 0); r.Remaining != 400 {
		t.Fatalf("tpm remaining %d, want 400", r.Remaining)
	}
}

func TestReserveIsAtomicUnderConcurrency(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	a := Limit{Name: "a", Limit: 100, Period: time.Hour}
	b := Limit{Name: "b", Limit: 50, Period: time.Hour, Algorithm: FixedWindow}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 8 {
		wg.Go(func() {
			out := make([]Result, 2)
			for range 100 {
				if ok, _ := s.Reserve("t", []Request{{Limit: a, Hits: 1}, {Limit: b, Hits: 1}}, out); ok {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	ra := mustCheck(t, s, "t", a, 0)
	if admitted != 50 || ra.Remaining != 50 {
		t.Fatalf("admitted %d (a remaining %d), want 50 and 50", admitted, ra.Remaining)
	}
}

func TestAdjustRefundsAndCharges(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{})
	mustCheck(t, s, "acme", tpm, 900)
	if err := s.Adjust("acme", []Adjustment{{Limit: tpm, Delta: -500}}); err != nil {
		t.Fatal(err)
	}
	if r := mustCheck(t, s, "acme", tpm, 0); r.Remaining != 600 {
		t.Fatalf("after refund: remaining %d, want 600", r.Remaining)
	}
	// A refund never fills past full.
	_ = s.Adjust("acme", []Adjustment{{Limit: tpm, Delta: -5000}})
	if r := mustCheck(t, s, "acme", tpm, 0); r.Remaining != 1000 {
		t.Fatalf("after over-refund: remaining %d, want 1000", r.Remaining)
	}
	// Debt is carried whole: 1500 beyond a full bucket means no tokens
	// for 1.5 minutes; the wait told is at most the period, and told again.
	_ = s.Adjust("acme", []Adjustment{{Limit: tpm, Delta: 2500}})
	r := mustCheck(t, s, "acme", tpm, 1)
	if r.Allowed || r.RetryAfter != time.Minute {
		t.Fatalf("in debt: %+v, want denied, retry after the period (1m)", r)
	}
	clock.Advance(r.RetryAfter)
	r = mustCheck(t, s, "acme", tpm, 1)
	if r.Allowed || r.RetryAfter != 30*time.Second+60*time.Millisecond {
		t.Fatalf("a minute on, half a minute of debt is left: %+v, want 1 token in 30.06s", r)
	}
	clock.Advance(r.RetryAfter)
	if r := mustCheck(t, s, "acme", tpm, 1); !r.Allowed {
		t.Fatalf("debt paid off but denied: %+v", r)
	}
}

func TestAdjustWindows(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{})
	fw := Limit{Name: "fw", Algorithm: FixedWindow, Limit: 10, Period: time.Minute}
	r := mustCheck(t, s, "t", fw, 8)
	_ = s.Adjust("t", []Adjustment{{Limit: fw, Delta: -5, Window: r.Window}})
	if got := mustCheck(t, s, "t", fw, 0); got.Remaining != 7 {
		t.Fatalf("same-window refund: remaining %d, want 7", got.Remaining)
	}
	clock.Advance(time.Minute)
	_ = s.Adjust("t", []Adjustment{{Limit: fw, Delta: -3, Window: r.Window}})
	if got := mustCheck(t, s, "t", fw, 0); got.Remaining != 10 {
		t.Fatalf("refund to a closed window changed the new one: remaining %d", got.Remaining)
	}
	_ = s.Adjust("t", []Adjustment{{Limit: fw, Delta: 4}})
	if got := mustCheck(t, s, "t", fw, 0); got.Remaining != 6 {
		t.Fatalf("charge: remaining %d, want 6", got.Remaining)
	}
}

func TestConcurrencyLeases(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{})
	c := Limit{Name: "conc", Algorithm: Concurrency, Limit: 2, Period: 30 * time.Second}
	a := mustCheck(t, s, "t", c, 1)
	b := mustCheck(t, s, "t", c, 1)
	if !a.Allowed || !b.Allowed || a.Lease == b.Lease || a.Lease == 0 {
		t.Fatalf("leases: %+v %+v", a, b)
	}
	if r := mustCheck(t, s, "t", c, 1); r.Allowed || r.RetryAfter != 30*time.Second {
		t.Fatalf("third lease: %+v", r)
	}
	_ = s.Adjust("t", []Adjustment{{Limit: c, Lease: a.Lease}})
	_ = s.Adjust("t", []Adjustment{{Limit: c, Lease: a.Lease}}) // twice is harmless
	if r := mustCheck(t, s, "t", c, 1); !r.Allowed {
		t.Fatalf("after release: %+v", r)
	}
	clock.Advance(30 * time.Second)
	if r := mustCheck(t, s, "t", c, 0); r.Remaining != 2 {
		t.Fatalf("leases did not expire: %+v", r)
	}
}

func TestCalendarMonthResetsAtMonthStart(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{})
	clock.Set(time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC))
	m := Limit{Name: "month", Algorithm: CalendarMonth, Limit: 100}
	mustCheck(t, s, "t", m, 100)
	r := mustCheck(t, s, "t", m, 1)
	if r.Allowed || r.RetryAfter != time.Minute {
		t.Fatalf("exhausted month: %+v", r)
	}
	clock.Advance(time.Minute)
	if r := mustCheck(t, s, "t", m, 100); !r.Allowed {
		t.Fatalf("new month: %+v", r)
	}
}

func TestReshapeKeepsConsumption(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{})
	mustCheck(t, s, "t", rpm, 6)
	bigger := rpm
	bigger.Limit, bigger.Period = 20, time.Hour
	if r := mustCheck(t, s, "t", bigger, 0); r.Remaining != 14 {
		t.Fatalf("after reshape: remaining %d, want 14", r.Remaining)
	}

	// Time before the change refills at the old rate: 100/h fully used,
	// half an hour later the bucket holds 50 whatever the new rate is.
	hourly := Limit{Name: "h", Limit: 100, Period: time.Hour}
	mustCheck(t, s, "t", hourly, 100)
	clock.Advance(30 * time.Minute)
	faster := hourly
	faster.Limit, faster.Burst = 100_000, 100
	if r := mustCheck(t, s, "t", faster, 0); r.Remaining != 50 {
		t.Fatalf("bucket after a rate change: remaining %d, want 50", r.Remaining)
	}

	// A window rolls under its old period before the new one applies.
	fw := Limit{Name: "fw", Algorithm: FixedWindow, Limit: 10, Period: time.Minute}
	mustCheck(t, s, "t", fw, 10)
	clock.Advance(3 * time.Hour)
	fw.Period = 2 * time.Minute
	if r := mustCheck(t, s, "t", fw, 1); !r.Allowed {
		t.Fatalf("window carried an old count across a period change: %+v", r)
	}
}

func TestAdjustNeverResetsAnotherAlgorithm(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	for range 10 {
		mustCheck(t, s, "t", rpm, 1)
	}
	asConc := rpm
	asConc.Algorithm = Concurrency
	if err := s.Adjust("t", []Adjustment{{Limit: asConc, Lease: 7}, {Limit: asConc, Delta: -5}}); err != nil {
		t.Fatal(err)
	}
	if r := mustCheck(t, s, "t", rpm, 1); r.Allowed {
		t.Fatalf("a release for another algorithm reset the bucket: %+v", r)
	}
}

func TestEvictionPrefersRestedTenants(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{Shards: 1, MaxEntries: 3})
	mustCheck(t, s, "busy", rpm, 10) // drained: must survive
	clock.Advance(time.Second)
	light := Limit{Name: "l", Limit: 10, Period: time.Millisecond}
	mustCheck(t, s, "light-1", light, 1)
	mustCheck(t, s, "light-2", light, 1)
	clock.Advance(time.Second) // the light tenants are full again
	for i := range 10 {
		mustCheck(t, s, fmt.Sprint("new-", i), light, 1)
		clock.Advance(time.Second)
	}
	// 12s have refilled 2 of busy's 10; a fresh entry would have 9 left.
	if r := mustCheck(t, s, "busy", rpm, 1); r.Remaining != 1 {
		t.Fatalf("a drained tenant was evicted while rested ones were there: %+v", r)
	}
	if s.Len() > 3 {
		t.Fatalf("len %d over MaxEntries 3", s.Len())
	}
}

func TestMaxEntriesIsStoreWide(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{MaxEntries: 100})
	for i := range 1000 {
		mustCheck(t, s, fmt.Sprint("t", i), rpm, 1)
	}
	if s.Len() > 100 || s.Evictions() != uint64(1000-s.Len()) {
		t.Fatalf("len %d evictions %d, want at most 100 and the rest evicted", s.Len(), s.Evictions())
	}
}

func TestMaxEntriesEvicts(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{Shards: 1, MaxEntries: 100})
	for i := range 150 {
		clock.Advance(time.Millisecond)
		mustCheck(t, s, fmt.Sprint("t", i), rpm, 1)
	}
	if s.Len() != 100 || s.Evictions() != 50 {
		t.Fatalf("len %d evictions %d, want 100 and 50", s.Len(), s.Evictions())
	}
	// A tenant never evicts itself to make room for its own next limit.
	mustCheck(t, s, "t149", tpm, 1)
	if r := mustCheck(t, s, "t149", rpm, 0); r.Remaining != 9 {
		t.Fatalf("tenant lost its own state: %+v", r)
	}
}

// Evictions and sweeps move records within a shard's table. Whatever moves,
// a tenant keeps every limit it has used until it is evicted as a whole, a
// tenant is never evicted to make room for its own next limit, and what it
// consumed stays consumed.
func TestRecordsThatMoveKeepTheirState(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{Shards: 1, MaxEntries: 48})
	day := func(name string) Limit { return Limit{Name: name, Limit: 1000, Period: 24 * time.Hour} }
	used := map[string]map[string]int64{} // tenant → limit → hits, while held
	rng := rand.New(rand.NewPCG(7, 11))
	for step := range 20000 {
		clock.Advance(time.Millisecond)
		tenant, limit := fmt.Sprint("t", rng.IntN(40)), fmt.Sprint("l", rng.IntN(4))
		held := s.Export(tenant) != nil
		if !held {
			delete(used, tenant)
		}
		r := mustCheck(t, s, tenant, day(limit), 1)
		if used[tenant] == nil {
			used[tenant] = map[string]int64{}
		}
		used[tenant][limit]++
		if want := 1000 - used[tenant][limit]; r.Remaining != want {
			t.Fatalf("step %d: %s/%s has %d left, want %d", step, tenant, limit, r.Remaining, want)
		}
		states := s.Export(tenant)
		if len(states) != len(used[tenant]) {
			t.Fatalf("step %d: %s holds %d limits, want %d (%v)", step, tenant, len(states), len(used[tenant]), used[tenant])
		}
		if step%1000 == 999 {
			clock.Advance(25 * time.Hour) // every limit back to full
			s.Sweep()
			used = map[string]map[string]int64{}
			if s.Len() != 0 {
				t.Fatalf("step %d: %d entries left after a sweep of rested tenants", step, s.Len())
			}
		}
	}
	if s.Evictions() == 0 {
		t.Fatal("no eviction happened: the test moved no record")
	}
}

func TestSweepForgetsOnlyRestedTenants(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{IdleTTL: time.Minute})
	mustCheck(t, s, "light", Limit{Name: "r", Limit: 100, Period: time.Second}, 1)
	mustCheck(t, s, "month", Limit{Name: "m", Algorithm: CalendarMonth, Limit: 100}, 1)
	clock.Advance(2 * time.Minute)
	if n := s.Sweep(); n != 1 || s.Len() != 1 {
		t.Fatalf("swept %d, left %d; want 1 and 1", n, s.Len())
	}
	if r := mustCheck(t, s, "month", Limit{Name: "m", Algorithm: CalendarMonth, Limit: 100}, 0); r.Remaining != 99 {
		t.Fatalf("monthly usage forgotten: %+v", r)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	cases := []struct {
		tenant string
		lim    Limit
		hits   int64
		want   error
	}{
		{"", rpm, 1, ErrInvalidLimit},
		{"t", Limit{Name: "x", Period: time.Second}, 1, ErrInvalidLimit},
		{"t", Limit{Name: "x", Limit: 1}, 1, ErrInvalidLimit},
		{"t", Limit{Name: "x", Limit: 1, Period: 2 * MaxPeriod}, 1, ErrInvalidLimit},
		{"t", Limit{Name: "x", Limit: 1, Period: time.Second, Algorithm: 42}, 1, ErrUnknownAlgorithm},
		{"t", rpm, -1, ErrInvalidHits},
		{"t", Limit{Name: "x", Limit: MaxConcurrency + 1, Period: time.Second, Algorithm: Concurrency}, 1, ErrInvalidLimit},
		{"t", Limit{Name: "x", Limit: 1, Period: -time.Second, Algorithm: CalendarMonth}, 1, ErrInvalidLimit},
	}
	for _, c := range cases {
		if _, err := s.Check(c.tenant, c.lim, c.hits); !errors.Is(err, c.want) {
			t.Errorf("Check(%q, %+v, %d) = %v, want %v", c.tenant, c.lim, c.hits, err, c.want)
		}
	}
	dup := []Request{{Limit: rpm, Hits: 1}, {Limit: rpm, Hits: 1}}
	if _, err := s.Reserve("t", dup, make([]Result, 2)); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("duplicate names: %v", err)
	}
	if s.Len() != 0 {
		t.Fatalf("invalid input changed state: %d entries", s.Len())
	}
	if _, err := ParseAlgorithm("leaky"); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("ParseAlgorithm: %v", err)
	}
}

func TestHugeValuesDoNotOverflow(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{})
	l := Limit{Name: "big", Limit: 1 << 62, Period: MaxPeriod, Burst: 1 << 62}
	if r := mustCheck(t, s, "t", l, 1<<62); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("%+v", r)
	}
	r := mustCheck(t, s, "t", l, 1<<62)
	if r.Allowed || r.RetryAfter != MaxPeriod {
		t.Fatalf("%+v", r)
	}
	clock.Advance(MaxPeriod)
	if r := mustCheck(t, s, "t", l, 1<<62); !r.Allowed {
		t.Fatalf("%+v", r)
	}
}

func TestSealOfNoTenantHoldsNothing(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{Shards: 1})
	for range 100 {
		if got := s.Seal(""); got != nil {
			t.Fatalf("Seal(\"\") = %v", got)
		}
	}
	if n := s.shards[0].used; n != 0 {
		t.Fatalf("%d records in use after sealing no tenant", n)
	}
}

// Lease ids cannot be guessed from one another: no id follows the last.
func TestLeaseIDsAreUnpredictable(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	conc := Limit{Name: "conc", Algorithm: Concurrency, Limit: 1000, Period: time.Hour}
	seen := map[uint64]bool{}
	var last uint64
	for i := range 200 {
		r := mustCheck(t, s, "acme", conc, 1)
		if r.Lease == 0 || seen[r.Lease] || (i > 0 && (r.Lease == last+1 || r.Lease == last-1)) {
			t.Fatalf("lease %d: id %d after %d", i, r.Lease, last)
		}
		seen[r.Lease], last = true, r.Lease
	}
}

// The store counts the leases it holds, and refuses a lease beyond
// MaxLeases without taking anything else of the request.
func TestLeasesAreBoundedStoreWide(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{MaxLeases: 5})
	conc := Limit{Name: "conc", Algorithm: Concurrency, Limit: 3, Period: 10 * time.Second}
	first := mustCheck(t, s, "a", conc, 1)
	mustCheck(t, s, "a", conc, 1)
	mustCheck(t, s, "a", conc, 1)
	out := make([]Result, 2)
	for range 2 {
		if ok, err := s.Reserve("b", []Request{{Limit: tpm, Hits: 10}, {Limit: conc, Hits: 1}}, out); !ok || err != nil {
			t.Fatalf("reserve: %v %v", ok, err)
		}
	}
	if got := s.Leases(); got != 5 {
		t.Fatalf("leases held: %d, want 5", got)
	}
	if _, err := s.Check("c", conc, 1); !errors.Is(err, ErrTooManyLeases) {
		t.Fatalf("a sixth lease: %v, want ErrTooManyLeases", err)
	}
	if _, err := s.Reserve("c", []Request{{Limit: tpm, Hits: 10}, {Limit: conc, Hits: 1}}, out); !errors.Is(err, ErrTooManyLeases) {
		t.Fatalf("a sixth lease in a reservation: %v, want ErrTooManyLeases", err)
	}
	if got := s.LeaseRefusals(); got != 2 {
		t.Fatalf("refusals counted: %d, want 2", got)
	}
	if r := mustCheck(t, s, "c", tpm, 0); r.Remaining != tpm.Limit {
		t.Fatalf("the refused reservation took tokens: %+v", r)
	}
	if r := mustCheck(t, s, "c", conc, 0); !r.Allowed {
		t.Fatalf("a look at a concurrency limit, which takes no lease, was refused: %+v", r)
	}
	if err := s.Adjust("a", []Adjustment{{Limit: conc, Lease: first.Lease}}); err != nil {
		t.Fatal(err)
	}
	if r := mustCheck(t, s, "c", conc, 1); !r.Allowed || s.Leases() != 5 {
		t.Fatalf("after a release: %+v, %d leases held", r, s.Leases())
	}
	clock.Advance(10 * time.Second)
	s.Sweep()
	if got := s.Leases(); got != 0 {
		t.Fatalf("after every lease expired and a sweep: %d held, want 0", got)
	}
}

// Whatever happens to the entries that hold them (taken, released,
// expired, sealed, merged, reshaped, evicted, swept), the store's count of
// leases is the number its entries hold.
func TestLeaseCountMatchesTheEntries(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{MaxEntries: 64, Shards: 4, IdleTTL: time.Hour})
	rng := rand.New(rand.NewPCG(7, 11))
	conc := Limit{Name: "conc", Algorithm: Concurrency, Limit: 50, Period: 30 * time.Second}
	asBucket := Limit{Name: "conc", Limit: 50, Period: 30 * time.Second}
	var leases []struct {
		tenant string
		id     uint64
	}
	sealed := map[string][]EntryState{}
	out := make([]Result, 2)
	for i := range 5000 {
		tenant := fmt.Sprintf("t-%d", rng.IntN(300))
		var err error
		switch op := rng.IntN(10); op {
		case 0, 1, 2:
			var r Result
			if r, err = s.Check(tenant, conc, rng.Int64N(3)); err == nil && r.Lease != 0 {
				leases = append(leases, struct {
					tenant string
					id     uint64
				}{tenant, r.Lease})
			}
		case 3:
			_, err = s.Reserve(tenant, []Request{{Limit: rpm, Hits: 1}, {Limit: conc, Hits: 1}}, out)
		case 4:
			if len(leases) > 0 {
				l := leases[rng.IntN(len(leases))]
				err = s.Adjust(l.tenant, []Adjustment{{Limit: conc, Lease: l.id}})
			}
		case 5:
			if _, done := sealed[tenant]; !done {
				sealed[tenant] = s.Seal(tenant)
			}
		case 6:
			if st, ok := sealed[tenant]; ok {
				delete(sealed, tenant)
				err = s.Merge(tenant, st)
			}
		case 7:
			_, err = s.Check(tenant, asBucket, 0) // reshaped to another algorithm: its leases go
		case 8:
			clock.Advance(time.Duration(rng.Int64N(int64(20 * time.Second))))
		case 9:
			s.Sweep()
		}
		if err != nil && !errors.Is(err, ErrMoved) {
			t.Fatalf("op %d: %v", i, err)
		}
		if held, counted := heldLeases(s), s.Leases(); held != counted {
			t.Fatalf("after op %d: the entries hold %d leases, the store counts %d", i, held, counted)
		}
	}
	if s.Evictions() == 0 {
		t.Fatal("no entry was evicted: the test does not cover eviction")
	}
}

// heldLeases counts the leases in the store's entries one by one.
func heldLeases(s *Store) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for j := range sh.table {
			if sh.table[j].name != "" {
				n += sh.table[j].leaseCount()
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// The tenants of a plan share one copy of each limit, and a copy no entry
// uses any more is forgotten: reshaped, sealed, taken, replaced and swept
// tenants all give theirs back.
func TestLimitDefinitionsAreSharedAndForgotten(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{Shards: 1, IdleTTL: time.Minute})
	sh := &s.shards[0]
	refs := func() map[string]int {
		out := map[string]int{}
		for l, d := range sh.limits {
			out[fmt.Sprintf("%s/%d", l.Name, l.Limit)] = d.refs
		}
		return out
	}
	for i := range 100 {
		mustCheck(t, s, fmt.Sprint("t", i), rpm, 1)
	}
	if got := refs(); len(got) != 1 || got["rpm/10"] != 100 {
		t.Fatalf("100 tenants of one limit: definitions %v, want rpm/10 used 100 times", got)
	}
	for i := range sh.table {
		if ts := &sh.table[i]; ts.name != "" && ts.first.def != sh.limits[rpm] {
			t.Fatalf("%s holds its own copy of the definition", ts.name)
		}
	}
	mustCheck(t, s, "t0", Limit{Name: "rpm", Limit: 20, Period: time.Minute}, 1)
	if got := refs(); len(got) != 2 || got["rpm/10"] != 99 || got["rpm/20"] != 1 {
		t.Fatalf("after a reshape: %v, want rpm/10 ×99 and rpm/20 ×1", got)
	}
	s.Seal("t1")
	s.Take("t2")
	states := s.Export("t3")
	if err := s.Replace("t3", states); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace("t3", states); err != nil {
		t.Fatal(err)
	}
	if got := refs(); got["rpm/10"] != 97 {
		t.Fatalf("after a seal, a take and two replaces: %v, want rpm/10 ×97", got)
	}
	clock.Advance(time.Hour)
	if n := s.Sweep(); n != 98 {
		t.Fatalf("swept %d tenants, want 98 (all but the sealed and the taken one)", n)
	}
	if got := refs(); len(got) != 0 {
		t.Fatalf("nothing holds a limit, yet the shard keeps %v", got)
	}
}

// A sweep takes a shard's lock a few records at a time, and still forgets
// every idle tenant of a shard much larger than that, keeping those in use.
func TestSweepCoversLargeShards(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{Shards: 1, IdleTTL: time.Minute})
	for i := range 1000 {
		mustCheck(t, s, fmt.Sprint("idle-", i), rpm, 1)
	}
	clock.Advance(time.Hour)
	for i := range 100 {
		mustCheck(t, s, fmt.Sprint("busy-", i), rpm, 1)
	}
	if n := s.Sweep(); n != 1000 {
		t.Fatalf("swept %d tenants, want the 1000 idle ones", n)
	}
	if s.Len() != 100 {
		t.Fatalf("%d entries left, want the 100 in use", s.Len())
	}
}

// A concurrency limit whose definition changes (its own copy, holding its
// leases) keeps the leases it holds.
func TestReshapeKeepsConcurrencyLeases(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(Options{})
	conc := Limit{Name: "conc", Algorithm: Concurrency, Limit: 3, Period: time.Minute}
	mustCheck(t, s, "t", conc, 2)
	conc.Limit, conc.Period = 5, time.Hour
	if r := mustCheck(t, s, "t", conc, 0); r.Remaining != 3 {
		t.Fatalf("after reshape: remaining %d, want 3 (2 of 5 held)", r.Remaining)
	}
	if s.Leases() != 1 {
		t.Fatalf("leases %d after reshape, want 1", s.Leases())
	}
}

// A record keeps its last use in whole seconds; Sweep still never forgets
// a tenant before it has been idle for IdleTTL (the test's epoch is half
// way through a second, so a plain difference of seconds would say 60 s
// after 59.6).
func TestSweepWaitsTheWholeIdleTTL(t *testing.T) {
	t.Parallel()
	s, clock := newTestStore(Options{IdleTTL: time.Minute})
	mustCheck(t, s, "t", Limit{Name: "r", Limit: 100, Period: time.Second}, 1)
	clock.Advance(59600 * time.Millisecond)
	if n := s.Sweep(); n != 0 {
		t.Fatalf("swept %d tenants idle for 59.6s of a minute's TTL", n)
	}
	clock.Advance(2 * time.Second)
	if n := s.Sweep(); n != 1 {
		t.Fatalf("swept %d tenants idle for 61.6s, want 1", n)
	}
}
