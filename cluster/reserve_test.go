package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// reserveOn reserves on node i of the cluster and fails the test on error.
func reserveOn(t *testing.T, c *testCluster, i int, tokens int64) *Reservation {
	t.Helper()
	r, err := c.running()[i].Node.Reserve(t.Context(), "acme", tokens, time.Minute)
	if err != nil {
		t.Fatalf("reserve %d tokens on node %d: %v", tokens, i, err)
	}
	return r
}

func remaining(r *Reservation, name string) int64 {
	for _, l := range r.Limits {
		if l.Name == name {
			return l.Remaining
		}
	}
	return -1
}

func TestReservationsAreSettledOnTheOwnerAndRecordedOnce(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	putTenant(t, c.running()[0], &configv1.Tenant{Id: "acme", Plan: "gold", Overrides: &configv1.Overrides{
		TokensPerMinute: ptr(int64(1000)), MaxConcurrent: ptr(int64(2)), TokensPerMonth: ptr(int64(100000))}})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	owner := c.server(c.running()[0].Node.Owner("acme")).Node
	other := 0
	for i, s := range c.running() {
		if s.Node != owner {
			other = i
		}
	}

	// Two reservations from a node that does not own the tenant hold both
	// leases; a third is denied by concurrency alone, though tokens are
	// left.
	a, b := reserveOn(t, c, other, 300), reserveOn(t, c, other, 300)
	if !a.Allowed || !b.Allowed || a.Owner != owner.Name() {
		t.Fatalf("two reservations: allowed %v %v, owner %q (want %q)", a.Allowed, b.Allowed, a.Owner, owner.Name())
	}
	if got := remaining(b, quota.LimitTokensPerMinute); got != 400 {
		t.Fatalf("tokens per minute left after 2×300: %d, want 400", got)
	}
	if d := reserveOn(t, c, other, 1); d.Allowed || remaining(d, quota.LimitConcurrentRequests) != 0 {
		t.Fatalf("third reservation with 2 leases held: %+v", d.Limits)
	}

	// Settling a with 100 real tokens returns 200 and its lease; b's
	// upstream failed, so all of b comes back, its request included.
	c.running()[other].Node.Settle(a, quota.Usage{Model: "m", PromptTokens: 60, CompletionTokens: 40, CostMicros: 7})
	c.running()[other].Node.Settle(b, quota.Usage{Model: "m", Failed: true})
	var e *Reservation
	clustertest.Eventually(t, 5*time.Second, "the settlements to reach the owner", func() bool {
		e = reserveOn(t, c, other, 0)
		c.running()[other].Node.Settle(e, quota.Usage{Failed: true})
		return e.Allowed && remaining(e, quota.LimitTokensPerMinute) == 900
	})
	if got := remaining(e, quota.LimitConcurrentRequests); got != 1 {
		t.Fatalf("leases free after both settled (one taken by this check): %d, want 1", got)
	}

	// The ledger gets the real usage of a, once; b and the probes were
	// refunded and record nothing.
	clustertest.Eventually(t, 10*time.Second, "the usage in every node's ledger", func() bool {
		for _, s := range c.running() {
			u := s.Node.fsm.MonthUsage("acme", "2026-05")
			if u.GetTokens() != 100 || u.GetRequests() != 1 || u.GetPromptTokens() != 60 || u.GetCompletionTokens() != 40 || u.GetCostMicros() != 7 {
				return false
			}
		}
		return true
	})
	if got := testutil.ToFloat64(c.running()[other].Node.metrics.settled.WithLabelValues("sent")); got < 2 {
		t.Fatalf("settlements sent from the non-owner: %v, want at least 2", got)
	}
}

func TestASettlementResentIsAppliedOnce(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 1)
	putTenant(t, c.running()[0], &configv1.Tenant{Id: "acme", Plan: "gold", Overrides: &configv1.Overrides{TokensPerMinute: ptr(int64(1000))}})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	n := c.running()[0].Node
	r := reserveOn(t, c, 0, 500)
	s := &settlement{tenant: "acme", limits: r.limits, reserved: 500, usage: quota.Usage{Model: "m", PromptTokens: 10, CompletionTokens: 10}, day: "2026-05-01", origin: "elsewhere", seq: 42}
	req := &peerv1.SettleRequest{From: "elsewhere", Settlements: []*peerv1.Settlement{s.toProto()}}
	svc := n.PeerService()
	for range 2 {
		if _, err := svc.Settle(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if u := n.fsm.MonthUsage("acme", "2026-05"); u.GetTokens() != 20 || u.GetRequests() != 1 {
		t.Fatalf("ledger after the same settlement twice: %v, want 20 tokens in 1 request", u)
	}
	if got := remaining(reserveOn(t, c, 0, 0), quota.LimitTokensPerMinute); got != 980 {
		t.Fatalf("tokens per minute after settling 500 reserved to 20 (twice sent): %d left, want 980", got)
	}

	// A node settles in its own name: one naming another origin first-hand
	// is refused (it would spend that node's sequence numbers).
	forged := s.toProto()
	forged.Seq = 43
	if _, err := svc.Settle(t.Context(), &peerv1.SettleRequest{From: "forger", Settlements: []*peerv1.Settlement{forged}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a settlement in another node's name: %v, want PermissionDenied", err)
	}
	if !n.settled.first(settleID{"elsewhere", 43}, time.Now()) {
		t.Fatal("the refused settlement's sequence number was spent")
	}
	passedOn := s.toProto()
	passedOn.Seq, passedOn.Hops = 44, 1
	if _, err := svc.Settle(t.Context(), &peerv1.SettleRequest{From: "forwarder", Settlements: []*peerv1.Settlement{passedOn}}); err != nil {
		t.Fatalf("a settlement passed on by the node that handed the tenant here: %v", err)
	}

	// A peer's settlement is checked like a client's request.
	bad := s.toProto()
	bad.PromptTokens = -1
	if _, err := svc.Settle(t.Context(), &peerv1.SettleRequest{Settlements: []*peerv1.Settlement{bad}}); err == nil {
		t.Fatal("a settlement with negative tokens was accepted")
	}
}

func TestAReservationWhoseCallerGaveUpIsRefunded(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	putTenant(t, c.running()[0], &configv1.Tenant{Id: "acme", Plan: "gold", Overrides: &configv1.Overrides{MaxConcurrent: ptr(int64(1000))}})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	var other *Node
	for _, s := range c.running() {
		if s.Node.Name() != s.Node.Owner("acme") {
			other = s.Node
		}
	}
	// Callers that give up at any moment of the round trip to the owner;
	// what they got, they settle; what they did not get, the node does.
	gaveUp := 0
	for i := range 200 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%40)*10*time.Microsecond)
		r, err := other.Reserve(ctx, "acme", 1, time.Hour)
		cancel()
		if err != nil {
			gaveUp++
			continue
		}
		other.Settle(r, quota.Usage{Failed: true})
	}
	if gaveUp == 0 {
		t.Log("no caller gave up in time; the test proved less than it could")
	}
	// Reservations whose owner answered after the forward timeout were
	// admitted twice, there and by the failure policy here; both are
	// refunded.
	clustertest.Eventually(t, 10*time.Second, "every lease back", func() bool {
		r := reserveOn(t, c, 0, 0)
		c.running()[0].Node.Settle(r, quota.Usage{Failed: true})
		return remaining(r, quota.LimitConcurrentRequests) == 999
	})
}

func TestASettlementOutlivesTheOwnerItWasSentTo(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	putTenant(t, c.running()[0], &configv1.Tenant{Id: "acme", Plan: "gold"})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	ownerName := c.running()[0].Node.Owner("acme")
	var other *Node
	for _, s := range c.running() {
		if s.Node.Name() != ownerName {
			other = s.Node
		}
	}
	r, err := other.Reserve(t.Context(), "acme", 100, time.Hour)
	if err != nil || !r.Allowed {
		t.Fatalf("reserve: %v %v", r, err)
	}
	// The owner dies with the reservation; the settlement is resent until
	// the tenant's next owner takes it, and its usage reaches the ledger.
	c.kill(ownerName)
	other.Settle(r, quota.Usage{Model: "m", PromptTokens: 30, CompletionTokens: 12})
	clustertest.Eventually(t, 20*time.Second, "the usage in the ledger", func() bool {
		return other.fsm.MonthUsage("acme", "2026-05").GetTokens() == 42
	})
	if other.settles.pending() != 0 {
		t.Fatalf("%d settlements still pending", other.settles.pending())
	}
}

// While it holds as many settlements as it may, a node takes no new
// reservation (those it holds are never dropped), and counts the refusal.
func TestReservationsWaitWhileSettlementsAreBackedUp(t *testing.T) {
	t.Parallel()
	n := NewNode(Config{NodeName: "n", MaxPendingSettles: 2}) // not started: nothing drains the queue
	n.settles.add(&settlement{tenant: "a"})
	if _, err := n.Reserve(t.Context(), "acme", 1, 0); errors.Is(err, quota.ErrOverloaded) {
		t.Fatal("refused with one settlement pending of two allowed")
	}
	n.settles.add(&settlement{tenant: "b"})
	if _, err := n.Reserve(t.Context(), "acme", 1, 0); !errors.Is(err, quota.ErrOverloaded) {
		t.Fatalf("with the settlements backed up: %v, want ErrOverloaded", err)
	}
	if got := testutil.ToFloat64(n.metrics.reservationsRefused); got != 1 {
		t.Fatalf("tollgate_reservations_overloaded_total = %v", got)
	}
}

// An owner that holds the most concurrency leases it may refuses the next
// one as overloaded, to its own callers and to a node that forwarded the
// check, rather than have the failure policy hand out what it refuses.
func TestAnOwnerFullOfLeasesRefusesTheNextAsOverloaded(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 2, func(cfg *Config) { cfg.MaxLeases = 2 })
	owner, other := c.server("node-1").Node, c.server("node-2").Node
	conc := func(tenant string) *quota.CheckRequest {
		return &quota.CheckRequest{Tenant: tenant, Hits: 1, Limits: []limiter.Limit{
			{Name: "conc", Algorithm: limiter.Concurrency, Limit: 10, Period: time.Minute}}}
	}
	a, b := tenantOwnedBy(t, owner.currentRing(), "node-1", "full-a"), tenantOwnedBy(t, owner.currentRing(), "node-1", "full-b")
	for _, tenant := range []string{a, b} {
		if resp, err := owner.Check(t.Context(), conc(tenant)); err != nil || !resp.Allowed {
			t.Fatalf("lease for %s: %+v %v", tenant, resp, err)
		}
	}
	if _, err := owner.Check(t.Context(), conc(a)); !errors.Is(err, quota.ErrOverloaded) {
		t.Fatalf("a third lease on the owner: %v, want ErrOverloaded", err)
	}
	resp, err := other.Check(t.Context(), conc(b))
	if !errors.Is(err, quota.ErrOverloaded) {
		t.Fatalf("a third lease forwarded from node-2: %+v %v, want ErrOverloaded", resp, err)
	}
	// Limits that hold no lease are decided as ever.
	if resp, err := other.Check(t.Context(), ptr(dayLimit(b, 10))); err != nil || !resp.Allowed || resp.Degraded {
		t.Fatalf("a day limit of the same tenant: %+v %v", resp, err)
	}
	if got := owner.store.Leases(); got != 2 {
		t.Fatalf("owner holds %d leases, want 2", got)
	}
}
