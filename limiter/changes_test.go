package limiter

import (
	"slices"
	"testing"
	"time"
)

// changedTenants collects what s.Changes hands out, by tenant.
func changedTenants(s *Store) map[string][]EntryState {
	out := map[string][]EntryState{}
	s.Changes(func(tenant string, states []EntryState) {
		if _, twice := out[tenant]; twice {
			panic("tenant " + tenant + " handed out twice")
		}
		out[tenant] = slices.Clone(states) // states is Changes' own once fn returns
	})
	return out
}

func TestChangesListsEachChangedTenantOnceWithItsLatestState(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(epoch)
	s := NewStore(Options{Clock: clock, TrackChanges: true})
	lim := Limit{Name: "rpm", Algorithm: FixedWindow, Limit: 3, Period: time.Hour}
	for range 3 {
		mustCheck(t, s, "a", lim, 1)
	}
	mustCheck(t, s, "b", lim, 1)
	mustCheck(t, s, "peek", lim, 0) // looks only: no change
	if got := s.PendingChanges(); got != 2 {
		t.Fatalf("PendingChanges = %d, want 2", got)
	}
	got := changedTenants(s)
	if len(got) != 2 || got["a"][0].Current != 3 || got["b"][0].Current != 1 {
		t.Fatalf("Changes = %+v, want a at 3 and b at 1", got)
	}
	if again := changedTenants(s); len(again) != 0 || s.PendingChanges() != 0 {
		t.Fatalf("a second Changes hands out %v (pending %d), want nothing", again, s.PendingChanges())
	}

	if r := mustCheck(t, s, "a", lim, 1); r.Allowed {
		t.Fatal("a fourth hit of 3 admitted")
	}
	if got := changedTenants(s); len(got) != 0 {
		t.Fatalf("a refused check counts as a change: %v", got)
	}
	if err := s.Adjust("a", []Adjustment{{Limit: lim, Delta: -1, Window: got0Window(t, s, "a")}}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s, "b", lim, 1)
	s.Seal("b") // handed away: no copy of it is handed out
	got = changedTenants(s)
	if len(got) != 1 || got["a"][0].Current != 2 {
		t.Fatalf("after a refund and a seal, Changes = %+v, want a at 2 only", got)
	}

	s.MarkChanged("a")
	s.MarkChanged("nobody")
	if got := changedTenants(s); len(got) != 1 || got["a"] == nil {
		t.Fatalf("after MarkChanged, Changes = %v, want a", got)
	}
}

func got0Window(t *testing.T, s *Store, tenant string) int64 {
	t.Helper()
	st := s.Export(tenant)
	if len(st) == 0 {
		t.Fatalf("%s has no state", tenant)
	}
	return st[0].Window
}

func TestChangesSurviveRecordsMovingInTheTable(t *testing.T) {
	t.Parallel()
	// One shard, many tenants: growth and removals move records while
	// they are listed as changed.
	s := NewStore(Options{Clock: NewManualClock(epoch), TrackChanges: true, Shards: 1, MaxEntries: 1 << 20})
	lim := Limit{Name: "rpm", Algorithm: FixedWindow, Limit: 10, Period: time.Hour}
	var want []string
	for i := range 500 {
		name := string(rune('a'+i%26)) + string(rune('0'+i/26%10)) + string(rune('0'+i/260))
		mustCheck(t, s, name, lim, 1)
		if i%3 == 0 {
			s.Take(name)
			continue
		}
		want = append(want, name)
	}
	got := changedTenants(s)
	var names []string
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("Changes handed out %d tenants, want the %d still held", len(names), len(want))
	}
	if s.PendingChanges() != 0 {
		t.Fatalf("PendingChanges = %d after Changes", s.PendingChanges())
	}
}

func TestOnChangeBatchRunsEveryBatchOfChanges(t *testing.T) {
	t.Parallel()
	calls := 0
	s := NewStore(Options{Clock: NewManualClock(epoch), TrackChanges: true, ChangeBatch: 10, OnChangeBatch: func() { calls++ }})
	lim := Limit{Name: "rpm", Algorithm: FixedWindow, Limit: 10, Period: time.Hour}
	for i := range 25 {
		mustCheck(t, s, string(rune('a'+i)), lim, 1)
	}
	if calls != 2 {
		t.Fatalf("OnChangeBatch ran %d times for 25 changes in batches of 10, want 2", calls)
	}
}

func TestAStoreWithoutTrackChangesListsNothing(t *testing.T) {
	t.Parallel()
	s := NewStore(Options{Clock: NewManualClock(epoch)})
	mustCheck(t, s, "a", Limit{Name: "rpm", Algorithm: FixedWindow, Limit: 10, Period: time.Hour}, 1)
	if got := changedTenants(s); len(got) != 0 || s.PendingChanges() != 0 {
		t.Fatalf("Changes = %v without TrackChanges", got)
	}
}

func TestReplaceHoldsExactlyTheOwnersCopy(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(epoch)
	owner := NewStore(Options{Clock: clock, TrackChanges: true})
	replica := NewStore(Options{Clock: clock})
	conc := Limit{Name: "conc", Algorithm: Concurrency, Limit: 3, Period: time.Minute}
	bucket := Limit{Name: "tpm", Algorithm: TokenBucket, Limit: 100, Period: time.Minute}
	copyOver := func() {
		for tenant, states := range changedTenants(owner) {
			if err := replica.Replace(tenant, states); err != nil {
				t.Fatal(err)
			}
		}
	}
	r1 := mustCheck(t, owner, "a", conc, 1)
	mustCheck(t, owner, "a", conc, 1)
	mustCheck(t, owner, "a", bucket, 60)
	copyOver()
	if replica.Leases() != 2 || replica.Len() != 2 {
		t.Fatalf("replica holds %d leases in %d entries, want 2 in 2", replica.Leases(), replica.Len())
	}
	// The owner releases a lease: the next copy drops it on the replica
	// too (a merge would keep it).
	if err := owner.Adjust("a", []Adjustment{{Limit: conc, Lease: r1.Lease}}); err != nil {
		t.Fatal(err)
	}
	copyOver()
	if replica.Leases() != 1 {
		t.Fatalf("replica holds %d leases after the owner released one, want 1", replica.Leases())
	}
	if r := mustCheck(t, replica, "a", bucket, 0); r.Remaining != 40 {
		t.Fatalf("replica's bucket has %d left, want the owner's 40", r.Remaining)
	}
	if err := replica.Replace("a", nil); err != nil || replica.Len() != 0 || replica.Leases() != 0 {
		t.Fatalf("Replace with no state: err %v, %d entries and %d leases left", err, replica.Len(), replica.Leases())
	}
	bad := []EntryState{{Limit: conc, Leases: []LeaseState{{ID: 1, Hits: 0, Expires: 1}}}}
	if err := replica.Replace("a", bad); err == nil {
		t.Fatal("Replace took a lease of 0 hits")
	}
}
