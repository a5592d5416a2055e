package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// fillOwned spends hits of lim for count tenants that node owns, straight
// in its store (as if checks had), and returns their names.
func fillOwned(t *testing.T, n *Node, prefix string, count int, lim limiter.Limit, hits int64) []string {
	t.Helper()
	ring := n.currentRing()
	tenants := make([]string, 0, count)
	for i := 0; len(tenants) < count; i++ {
		tenant := fmt.Sprintf("%s-%d", prefix, i)
		if ring.Owner(tenant) != n.name {
			continue
		}
		if _, err := n.store.Check(tenant, lim, hits); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tenant)
	}
	return tenants
}

// spentOn counts the tenants whose hits of lim are all spent on n.
func spentOn(t *testing.T, n *Node, tenants []string, lim limiter.Limit) int {
	t.Helper()
	spent := 0
	for _, tenant := range tenants {
		r, err := n.store.Check(tenant, lim, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Allowed {
			spent++
		}
	}
	return spent
}

// 100,000 tenants moving to one owner make a hand-off of many megabytes,
// more than one gRPC message may carry: it goes in acknowledged chunks,
// and every counter arrives.
func TestHandoffOfManyTenantsArrivesWhole(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	stay, leave := c.server("node-1").Node, c.server("node-2").Node
	lim := dayLimit("", 10).Limits[0]
	const count = 100_000
	tenants := fillOwned(t, leave, "many", count, lim, lim.Limit)

	// Under -race beside other tests, a chunk of ~18,000 tenants can take
	// longer to merge than one send waits for an acknowledgement, and is
	// sent again: the shutdown timeout must leave room for that.
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.server("node-2").Shutdown(ctx); err != nil {
		t.Fatalf("shutting down node-2: %v", err)
	}
	c.forget("node-2")
	took := time.Since(start)
	if got := spentOn(t, stay, tenants, lim); got != count {
		t.Fatalf("%d of %d tenants arrived with their counters spent", got, count)
	}
	sent := leave.forwardingStats().HandoffSent
	if sent != count {
		t.Fatalf("node-2 counted %v tenants sent, want %d", sent, count)
	}
	t.Logf("%d tenants handed off in %s (leave, hand-off and all)", count, took.Round(time.Millisecond))
}

// An owner that fails the first hand-off messages gets them again: the
// leaving node backs off and retries until they are acknowledged.
func TestHandoffIsRetriedUntilAcknowledged(t *testing.T) {
	t.Parallel()
	var refused atomic.Int32
	c := emptyTestCluster(t, nil)
	c.intercept = refuseHandoffs(func() bool { return refused.Add(1) <= 3 })
	c.start(2)
	stay, leave := c.server("node-1").Node, c.server("node-2").Node
	lim := dayLimit("", 10).Limits[0]
	tenants := fillOwned(t, leave, "retried", 50, lim, lim.Limit)

	c.leave("node-2")
	if got := spentOn(t, stay, tenants, lim); got != len(tenants) {
		t.Fatalf("%d of %d tenants arrived with their counters spent", got, len(tenants))
	}
	if n := refused.Load(); n < 4 {
		t.Fatalf("the owner saw %d hand-off calls, want the 3 refused and one more", n)
	}
	if failed := counterValue(leave.metrics.handoffFailed); failed != 3 {
		t.Fatalf("tollgate_handoff_failures_total = %v, want 3", failed)
	}
	clustertest.Eventually(t, time.Second, "nothing left to hand off", func() bool { return leave.handoff.pending() == 0 })
}

// A hand-off that its owner never acknowledges within the shutdown
// timeout is given up, and the leaving node says how many tenants it
// could not hand off (their new owner starts them afresh).
func TestLeaveSaysHowManyTenantsItCouldNotHandOff(t *testing.T) {
	t.Parallel()
	c := emptyTestCluster(t, nil)
	warnings := &recorder{Handler: c.log.Handler(), mu: &sync.Mutex{}, records: &[]slog.Record{}}
	c.log = slog.New(warnings)
	c.intercept = refuseHandoffs(func() bool { return true })
	c.start(2)
	stay, leave := c.server("node-1").Node, c.server("node-2").Node
	lim := dayLimit("", 10).Limits[0]
	tenants := fillOwned(t, leave, "stuck", 40, lim, lim.Limit)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := c.server("node-2").Shutdown(ctx); err != nil {
		t.Fatalf("shutting down node-2: %v", err)
	}
	c.forget("node-2")
	left, ok := warnings.attr("could not hand off every tenant before the shutdown timeout; their owners start them afresh", "tenants")
	if !ok || left.Int64() != int64(len(tenants)) {
		t.Fatalf("the leave's warning counted %v tenants (logged: %v), want %d", left, ok, len(tenants))
	}
	if failed := counterValue(leave.metrics.handoffFailed); failed < 1 {
		t.Fatalf("tollgate_handoff_failures_total = %v, want at least 1", failed)
	}
	if got := spentOn(t, stay, tenants, lim); got != 0 {
		t.Fatalf("%d tenants arrived although every hand-off was refused", got)
	}
}

// refuseHandoffs is a peer-server interceptor that answers Unavailable to
// the hand-off calls refuse says to refuse.
func refuseHandoffs(refuse func() bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*peerv1.HandoffRequest); ok && refuse() {
			return nil, status.Error(codes.Unavailable, "not now")
		}
		return handler(ctx, req)
	}
}

// recorder is a log handler that keeps the records it passes on.
type recorder struct {
	slog.Handler
	mu      *sync.Mutex
	records *[]slog.Record
}

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.records = append(*r.records, rec.Clone())
	r.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recorder{Handler: r.Handler.WithAttrs(attrs), mu: r.mu, records: r.records}
}

func (r *recorder) WithGroup(name string) slog.Handler {
	return &recorder{Handler: r.Handler.WithGroup(name), mu: r.mu, records: r.records}
}

// attr returns attribute key of the last record logged with message msg.
func (r *recorder) attr(msg, key string) (slog.Value, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(*r.records) - 1; i >= 0; i-- {
		rec := (*r.records)[i]
		if rec.Message != msg {
			continue
		}
		var v slog.Value
		found := false
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, found = a.Value, true
				return false
			}
			return true
		})
		return v, found
	}
	return slog.Value{}, false
}

// A leaving node takes in no state: not pushed (the sender keeps it and
// tries the next owner), not pulled (its own hand-off may have run).
func TestLeavingNodeTakesInNoState(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	a, b := c.server("node-1").Node, c.server("node-2").Node
	tenant := tenantOwnedBy(t, a.currentRing(), "node-1", "stranded")
	b.leaving.Store(true)
	push := &peerv1.HandoffRequest{From: "node-1", Tenants: []*peerv1.TenantState{tenantStateToProto(tenant, nil)}}
	if err := b.handoff.receive(push); !errors.Is(err, quota.ErrNotReady) {
		t.Fatalf("a push to a leaving node: %v, want quota.ErrNotReady", err)
	}
	if err := b.handoff.settle(t.Context(), tenant, "node-1"); !errors.Is(err, quota.ErrNotReady) {
		t.Fatalf("a pull by a leaving node: %v, want quota.ErrNotReady", err)
	}
	// And a check forwarded to it by the owner is handed back to the owner.
	if _, err := b.route(t.Context(), ptr(dayLimit(tenant, 10)), 1, "node-1", ""); !isHandedToYou(err) {
		t.Fatalf("a check from the owner to a leaving node: %v, want it handed back", err)
	}
}
