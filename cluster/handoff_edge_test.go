package cluster

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/quota"
)

// Edge cases of the hand-off protocol, set up by hand.

// Both nodes hold the tenant sealed with a tombstone naming the other:
// neither decides, and the answer is an error, not nothing.
func TestHandoffBothSidesSealedIsAnError(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "pingpong")
	now := time.Now()
	for _, x := range []struct {
		n  *Node
		to string
	}{{a, "node-2"}, {b, "node-1"}} {
		x.n.store.Seal(tenant)
		x.n.handoff.mu.Lock()
		x.n.handoff.setMoved(tenant, x.to, now)
		x.n.handoff.resolved[tenant] = now
		x.n.handoff.mu.Unlock()
	}
	resp, err := a.Check(t.Context(), ptr(dayLimit(tenant, 100)))
	if resp != nil || !errors.Is(err, quota.ErrOwnerUnavailable) {
		t.Fatalf("got %+v, %v; want quota.ErrOwnerUnavailable", resp, err)
	}
}

// A forwarded check whose caller has given up by the time the owner gets
// to it is not charged.
func TestExpiredForwardIsNotCharged(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2, peer.ForwardConfig{Timeout: 100 * time.Millisecond})
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "late")
	other := tenantOwnedBy(t, a.currentRing(), "node-2", "after")
	// a says it is handing the tenant over, so b settles first, and a pull
	// already in flight on b holds that until the caller has given up.
	a.handoff.mu.Lock()
	a.handoff.setMoved(tenant, "node-2", time.Now())
	a.handoff.mu.Unlock()
	call := &pullCall{done: make(chan struct{})}
	b.handoff.mu.Lock()
	b.handoff.pulls[tenant] = call
	b.handoff.mu.Unlock()

	start := time.Now()
	resp, err := a.Check(t.Context(), ptr(dayLimit(tenant, 100)))
	if err != nil || !resp.Degraded {
		t.Fatalf("caller's answer: %+v %v; want degraded", resp, err)
	}
	// Release the owner well after the caller's 100ms are up (the two
	// deadlines differ by the network's delay).
	clustertest.Eventually(t, time.Second, "the caller's deadline to pass on the owner too", func() bool {
		return time.Since(start) > 300*time.Millisecond
	})
	close(call.done)
	// b answers batches in order: once a later check is answered, the
	// late one has been dealt with.
	if resp, err := a.Check(t.Context(), ptr(dayLimit(other, 100))); err != nil || resp.Degraded {
		t.Fatalf("later check: %+v %v", resp, err)
	}
	if st := b.store.Export(tenant); len(st) != 0 {
		t.Fatalf("the owner charged a check whose caller had its answer already: %+v", st)
	}
}

// A hand-off that was pulled does not come back to the old owner when its
// tombstone ages out.
func TestPulledStateStaysWithThePuller(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "pulled")
	req := dayLimit(tenant, 100)
	for range 10 {
		if _, err := a.decideIn(a.store, &req); err != nil {
			t.Fatal(err)
		}
	}
	// a's push to b failed: the state waits in outgoing, sealed.
	a.handoff.mu.Lock()
	a.handoff.outgoing[tenant] = a.store.Seal(tenant)
	a.handoff.setMoved(tenant, "node-2", time.Now())
	a.handoff.mu.Unlock()
	b.handoff.pull(t.Context(), tenant, "node-1")
	if r, err := b.store.Check(tenant, req.Limits[0], 0); err != nil || r.Remaining != 90 {
		t.Fatalf("b after the pull: %+v %v", r, err)
	}
	a.handoff.mu.Lock()
	a.handoff.moved[tenant] = tombstone{owner: "node-2", at: time.Now().Add(-time.Minute)}
	a.handoff.mu.Unlock()
	a.handoff.prune()
	if st := a.store.Export(tenant); len(st) != 0 {
		t.Fatalf("the old owner got the pulled state back: %+v", st)
	}
}

// A push that failed is sent again when its tombstone ages out, to the
// node that owns the tenant by then.
func TestFailedPushIsSentAgain(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "retry")
	req := dayLimit(tenant, 100)
	for range 7 {
		if _, err := a.decideIn(a.store, &req); err != nil {
			t.Fatal(err)
		}
	}
	a.handoff.mu.Lock()
	a.handoff.outgoing[tenant] = a.store.Seal(tenant)
	a.handoff.setMoved(tenant, "node-2", time.Now().Add(-time.Minute))
	a.handoff.mu.Unlock()
	a.handoff.prune()
	if r, err := b.store.Check(tenant, req.Limits[0], 0); err != nil || r.Remaining != 93 {
		t.Fatalf("owner after the retried push: %+v %v, want 93 remaining", r, err)
	}
	if st := a.store.Export(tenant); len(st) != 0 {
		t.Fatalf("the old owner kept the state: %+v", st)
	}
}

// A node that joins and leaves again and again, while checks go on at the
// others: every check is answered. (A tenant handed back by a leaving node
// could be asked for at its old owner before the push landed, and each
// node's record named the other as the holder.)
func TestChecksDuringRepeatedJoinsAndLeavesAreAllAnswered(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	stable := c.running()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := map[string]int{}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				req := dayLimit(fmt.Sprintf("t-%d", (i*7+w)%20), 1<<30)
				if _, err := stable[(i+w)%len(stable)].Node.Check(t.Context(), &req); err != nil {
					mu.Lock()
					errs[err.Error()]++
					mu.Unlock()
				}
			}
		})
	}
	for range 8 {
		c.add("node-4")
		c.waitRing(4)
		c.leave("node-4")
		c.waitRing(3)
	}
	stop.Store(true)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("checks failed during joins and leaves: %v", errs)
	}
}
