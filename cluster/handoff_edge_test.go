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

// sealBothWays makes each of a and b hold tenant sealed, settled, with a
// tombstone naming the other; a side that held state keeps it as its push
// not yet acknowledged.
func sealBothWays(t *testing.T, a, b *Node, tenant string) {
	t.Helper()
	now := time.Now()
	for _, x := range []struct {
		n  *Node
		to string
	}{{a, b.name}, {b, a.name}} {
		x.n.handoff.mu.Lock()
		if st := x.n.store.Seal(tenant); len(st) > 0 {
			x.n.handoff.outgoing[tenant] = st // its push has not been acknowledged
		}
		x.n.handoff.setMoved(tenant, x.to, now)
		x.n.handoff.resolved[tenant] = now
		x.n.handoff.mu.Unlock()
	}
}

// spend decides req on n's store count times, as checks owned there would.
func spend(t *testing.T, n *Node, req *quota.CheckRequest, count int) {
	t.Helper()
	for range count {
		if _, err := n.decideIn(n.store, req); err != nil {
			t.Fatal(err)
		}
	}
}

// Both sides hold the tenant as handed to the other, and the caller's own
// copy never left (its push failed): the caller takes it back and decides,
// counting what was used before.
func TestAHandedBackTenantIsDecidedFromTheCopyThatNeverLeft(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "unsent")
	req := dayLimit(tenant, 100)
	spend(t, a, &req, 10)
	sealBothWays(t, a, b, tenant)
	resp, err := a.Check(t.Context(), ptr(dayLimit(tenant, 100)))
	if err != nil || !resp.Allowed || resp.Degraded || resp.Limits[0].Remaining != 89 {
		t.Fatalf("got %+v, %v; want allowed with 89 remaining", resp, err)
	}
	if left := a.handoff.pending(); left != 0 {
		t.Fatalf("the copy taken back is still waiting to be sent: %d", left)
	}
	if st := b.store.Export(tenant); len(st) != 0 {
		t.Fatalf("the other side holds a copy too: %+v", st)
	}
}

// Both sides hold the tenant as handed to the other, and the state is on
// its way from the other side (its push to the caller has not landed): the
// caller pulls it again, whatever it settled before.
func TestAHandedBackTenantIsPulledAgainFromTheOtherSide(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "unlanded")
	req := dayLimit(tenant, 100)
	spend(t, b, &req, 10)
	sealBothWays(t, a, b, tenant)
	resp, err := a.Check(t.Context(), ptr(dayLimit(tenant, 100)))
	if err != nil || !resp.Allowed || resp.Degraded || resp.Limits[0].Remaining != 89 {
		t.Fatalf("got %+v, %v; want allowed with 89 remaining", resp, err)
	}
	if left := b.handoff.pending(); left != 0 {
		t.Fatalf("the other side still means to send the pulled state: %d", left)
	}
}

// A chunk cut before its tenant was taken back does not carry it: the
// state taken back must not arrive at the other side as well.
func TestATenantTakenBackLeavesTheChunkCutBefore(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-2", "cut")
	other := tenantOwnedBy(t, a.currentRing(), "node-2", "cut-other")
	req, otherReq := dayLimit(tenant, 100), dayLimit(other, 100)
	for _, r := range []*quota.CheckRequest{&req, &otherReq} {
		if _, err := a.decideIn(a.store, r); err != nil {
			t.Fatal(err)
		}
	}
	a.handoff.mu.Lock()
	for _, x := range []string{tenant, other} {
		a.handoff.outgoing[x] = a.store.Seal(x)
		a.handoff.setMoved(x, "node-2", time.Now())
	}
	a.handoff.mu.Unlock()
	chunks := a.handoff.chunks()
	if len(chunks) != 1 || len(chunks[0].req.Tenants) != 2 {
		t.Fatalf("chunks: %+v", chunks)
	}
	if !a.handoff.takeBack(t.Context(), tenant, "node-2") {
		t.Fatal("the unsent copy was not taken back")
	}
	if !a.handoff.send(t.Context(), chunks[0]) {
		t.Fatal("the chunk was not acknowledged")
	}
	if st := b.store.Export(tenant); len(st) != 0 {
		t.Fatalf("the tenant taken back arrived at the other side too: %+v", st)
	}
	if st := b.store.Export(other); len(st) != 1 {
		t.Fatalf("the other tenant of the chunk did not arrive: %+v", st)
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
	// late one has been dealt with. (On a loaded machine a later check can
	// outlast the 100ms too, and is decided degraded on a: then another.)
	clustertest.Eventually(t, 5*time.Second, "a later check answered by the owner", func() bool {
		resp, err := a.Check(t.Context(), ptr(dayLimit(other, 100)))
		return err == nil && !resp.Degraded
	})
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
	spend(t, a, &req, 10)
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
	spend(t, a, &req, 7)
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
