package cluster

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/ring"
	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// remainingIn is what a store holding only states would have left of
// req's first limit.
func remainingIn(t *testing.T, clock limiter.Clock, req quota.CheckRequest, states []limiter.EntryState) int64 {
	t.Helper()
	s := limiter.NewStore(limiter.Options{Clock: clock})
	if err := s.Merge(req.Tenant, states); err != nil {
		t.Fatal(err)
	}
	r, err := s.Check(req.Tenant, req.Limits[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	return r.Remaining
}

// waitReplica waits until successor's copy of req's tenant has left
// exactly want.
func (c *testCluster) waitReplica(successor string, req quota.CheckRequest, want int64) {
	c.t.Helper()
	t := c.t.(*testing.T)
	clustertest.Eventually(t, 5*time.Second, successor+"'s copy of "+req.Tenant, func() bool {
		states := c.server(successor).Node.repl.replicas.Export(req.Tenant)
		return states != nil && remainingIn(t, c.clock, req, states) == want
	})
}

func TestACrashedOwnersTenantGoesOnFromItsCopy(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	ring := c.running()[0].Node.currentRing()
	tenant := tenantOwnedBy(t, ring, "node-3", "crash")
	successor := ring.Without("node-3").Owner(tenant)
	req := dayLimit(tenant, 100)
	if got := c.admitted(60, req); got != 60 {
		t.Fatalf("admitted %d of the first 60", got)
	}
	c.waitReplica(successor, req, 40)
	owner := c.server("node-3").Node
	clustertest.Eventually(t, 5*time.Second, "node-3 to observe its replication lag", func() bool {
		var lag dto.Metric
		return owner.repl.lag.Write(&lag) == nil && lag.GetHistogram().GetSampleCount() > 0
	})

	c.kill("node-3")
	c.waitRing(2)
	if got := c.admitted(100, req); got != 40 {
		t.Fatalf("after the owner's crash the cluster admitted %d more, want the 40 its copy had left", got)
	}
	n := c.server(successor).Node
	if n.repl.replicas.Export(tenant) != nil {
		t.Fatal("the copy is still held after its promotion")
	}
	if p := counterValue(n.repl.promoted); p < 1 {
		t.Fatalf("tollgate_replicas_promoted_total = %v", p)
	}
}

func TestAGracefulLeaveHandsOffAndDropsTheCopy(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	ring := c.running()[0].Node.currentRing()
	tenant := tenantOwnedBy(t, ring, "node-3", "leave")
	successor := ring.Without("node-3").Owner(tenant)
	req := dayLimit(tenant, 100)
	c.admitted(30, req)
	c.waitReplica(successor, req, 70)
	c.admitted(30, req) // not copied yet, perhaps: the hand-off carries it

	c.leave("node-3")
	c.waitRing(2)
	if got := c.admitted(100, req); got != 40 {
		t.Fatalf("after a graceful leave the cluster admitted %d more, want 40", got)
	}
	if c.server(successor).Node.repl.replicas.Export(tenant) != nil {
		t.Fatal("the successor still holds a copy of a tenant handed to it")
	}
}

func TestACopyIsPromotedBeforeTheFirstCheckDecides(t *testing.T) {
	t.Parallel()
	// A node not started: no gossip changes its ring under the test.
	clock := limiter.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	n := NewNode(Config{NodeName: "node-1", GossipAddr: "127.0.0.1:0", Clock: clock, Logger: clustertest.Logger(t)})
	two := ring.New([]string{"node-1", "node-2"}, nil)
	n.setRing(two)
	tenant := tenantOwnedBy(t, two, "node-2", "first")
	req := dayLimit(tenant, 10)
	owner := limiter.NewStore(limiter.Options{Clock: clock})
	if _, err := owner.Check(tenant, req.Limits[0], 10); err != nil {
		t.Fatal(err)
	}
	n.repl.receive(&peerv1.ReplicateRequest{From: "node-2", Tenants: []*peerv1.TenantState{tenantStateToProto(tenant, owner.Export(tenant))}})

	// node-2 dies; the promotion has not got round to the tenant yet: the
	// first check promotes it itself.
	one := two.Without("node-2")
	n.repl.ownersDied(two, one, map[string]bool{"node-2": true})
	n.setRing(one)
	resp, err := n.Check(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Allowed || resp.Owner != "node-1" {
		t.Fatalf("the first check after the owner died: %+v, want refused by node-1 from the copy", resp)
	}
	if n.repl.replicas.Export(tenant) != nil {
		t.Fatal("the copy is still held after its promotion")
	}
}

func TestNoReplicationCopiesNothing(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 2, func(cfg *Config) { cfg.NoReplication = true })
	n := c.server("node-1").Node
	tenant := tenantOwnedBy(t, n.currentRing(), "node-2", "off")
	c.admitted(5, dayLimit(tenant, 10))
	if n.repl != nil || c.server("node-2").Node.store.PendingChanges() != 0 {
		t.Fatal("replication runs with NoReplication")
	}
}

func TestInvalidCopiesAreLeftOutAndTheRestHeld(t *testing.T) {
	t.Parallel()
	n := NewNode(Config{NodeName: "node-1", GossipAddr: "127.0.0.1:0", Logger: clustertest.Logger(t)})
	good := tenantStateToProto("good", []limiter.EntryState{{Limit: limiter.Limit{Name: "rpm", Limit: 10, Period: time.Minute}, Current: 3}})
	n.repl.receive(&peerv1.ReplicateRequest{From: "node-2", Tenants: []*peerv1.TenantState{
		{Tenant: ""}, // no tenant
		{Tenant: "bad", Entries: []*peerv1.EntryState{{}}}, // a limit without a name
		good,
	}})
	if n.repl.replicas.Export("good") == nil || n.repl.replicas.Export("bad") != nil {
		t.Fatal("want the valid copy held and the invalid ones left out")
	}
	if got := counterValue(n.repl.received); got != 1 {
		t.Fatalf("tollgate_replica_updates_total = %v, want 1", got)
	}
}
