package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

func TestOwnerFailureFallsBackThenSurvivorsTakeOver(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	tenant := tenantOwnedBy(t, c.running()[0].Node.currentRing(), "node-3", "doomed")
	killedAt := time.Now()
	c.kill("node-3")

	// Until gossip declares node-3 dead, its tenants are decided by policy.
	local := dayLimit(tenant, 90)
	resp := c.check(0, local)
	if !resp.Degraded || resp.Owner != "node-1" || !resp.Allowed {
		t.Fatalf("owner down, policy local: %+v", resp)
	}
	if got := resp.Limits[0].Limit; got != 30 {
		t.Fatalf("local share of 90 over 3 nodes: limit %d, want 30", got)
	}
	closed := dayLimit(tenant, 90)
	closed.FailurePolicy = quota.PolicyClosed
	if resp := c.check(0, closed); !resp.Degraded || resp.Allowed || resp.Limits[0].RetryAfter <= 0 {
		t.Fatalf("owner down, policy closed: %+v", resp)
	}
	open := dayLimit(tenant, 90)
	open.FailurePolicy = quota.PolicyOpen
	if resp := c.check(1, open); !resp.Degraded || !resp.Allowed {
		t.Fatalf("owner down, policy open: %+v", resp)
	}
	if d := c.running()[0].Node.forwardingStats().Degraded; d < 2 {
		t.Fatalf("degraded decisions counted: %v", d)
	}

	c.waitRing(2)
	t.Logf("survivors took over %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	resp = c.check(1, local)
	if resp.Degraded || resp.Owner == "node-3" || resp.Limits[0].Limit != 90 {
		t.Fatalf("after take-over: %+v", resp)
	}
	for i := range 10 {
		if r := c.check(i, local); r.Degraded || r.Owner != resp.Owner {
			t.Fatalf("after take-over, check %d: %+v (owner should stay %s)", i, r, resp.Owner)
		}
	}
}

func TestForwardTimeoutAppliesThePolicy(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3, peer.ForwardConfig{Timeout: 300 * time.Millisecond})
	n1 := c.running()[0].Node
	tenant := tenantOwnedBy(t, n1.currentRing(), "node-2", "slow")
	other := tenantOwnedBy(t, n1.currentRing(), "node-3", "fine")
	silence(t, n1, "node-2")

	start := time.Now()
	resp := c.check(0, dayLimit(tenant, 10))
	waited := time.Since(start)
	if !resp.Degraded || resp.Owner != "node-1" {
		t.Fatalf("owner silent: %+v", resp)
	}
	if waited < 300*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("answered after %s; the forward timeout is 300ms", waited)
	}
	// A silent owner holds up only its own tenants.
	if resp := c.check(0, dayLimit(other, 10)); resp.Degraded || resp.Owner != "node-3" {
		t.Fatalf("a tenant of a healthy owner, while another owner is silent: %+v", resp)
	}
}

// silence makes n reach the named peer at an address that accepts
// connections and never answers, while gossip still has the peer alive.
func silence(t *testing.T, n *Node, name string) {
	t.Helper()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	go func() {
		for {
			conn, err := hole.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	members := n.Members()
	for i := range members {
		if members[i].Name == name {
			members[i].PeerAddr = hole.Addr().String()
		}
	}
	n.peers.Update(members)
}

// Checks beyond what may wait for a silent owner are decided by the failure
// policy at once, not after the forward timeout.
func TestAFullOwnerQueueAppliesThePolicyAtOnce(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second
	c := newTestCluster(t, 3, peer.ForwardConfig{BatchMax: 2, Timeout: timeout})
	n1 := c.running()[0].Node
	tenant := tenantOwnedBy(t, n1.currentRing(), "node-2", "stuck")
	silence(t, n1, "node-2")
	const callers = 30 // the stream never opens: 8 wait, 22 beyond
	var quick atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			req := dayLimit(tenant, 10)
			start := time.Now()
			resp, err := n1.Check(t.Context(), &req)
			if err != nil || !resp.Degraded {
				t.Errorf("silent owner: %+v, %v", resp, err)
				return
			}
			if time.Since(start) < timeout/2 {
				quick.Add(1)
			}
		})
	}
	wg.Wait()
	if q := quick.Load(); q < callers-2*5 {
		t.Fatalf("%d of %d checks were decided at once; at most 10 may wait for the owner", q, callers)
	}
}

// frozenPeer takes a check stream and never reads it: an owner whose
// process has stopped making progress while gossip still has it alive.
type frozenPeer struct{ peerv1.UnimplementedPeerServer }

func (frozenPeer) CheckStream(s peerv1.Peer_CheckStreamServer) error {
	<-s.Context().Done()
	return nil
}

// An owner that stops reading fills the stream until Send blocks. Callers
// still keep to their deadlines, the owner's departure does not wait on
// the blocked Send, and neither does stopping the node.
func TestAFrozenOwnerHoldsUpNeitherCallersNorStop(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	c := newTestCluster(t, 3, peer.ForwardConfig{Timeout: timeout})
	srv := c.running()[0]
	n1 := srv.Node
	tenant := tenantOwnedBy(t, n1.currentRing(), "node-2", "frozen")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	peerv1.RegisterPeerServer(gs, frozenPeer{})
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	members := n1.Members()
	for i := range members {
		if members[i].Name == "node-2" {
			members[i].PeerAddr = lis.Addr().String()
		}
	}
	n1.peers.Update(members)

	// Big checks, so that unread batches fill the flow-control windows.
	var limits []limiter.Limit
	for i := range 32 {
		limits = append(limits, limiter.Limit{Name: fmt.Sprintf("%s%02d", strings.Repeat("x", 120), i), Limit: 1000, Period: time.Hour})
	}
	check := func(ctx context.Context) time.Duration {
		start := time.Now()
		req := quota.CheckRequest{Tenant: tenant, Hits: 1, Limits: limits}
		if resp, err := n1.Check(ctx, &req); err == nil && !resp.Degraded {
			t.Errorf("a frozen owner answered: %+v", resp)
		}
		return time.Since(start)
	}
	var slowest atomic.Int64
	var wg sync.WaitGroup
	until := time.Now().Add(time.Second)
	for range 64 {
		wg.Go(func() {
			for time.Now().Before(until) {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
				took := check(ctx)
				cancel()
				if int64(took) > slowest.Load() {
					slowest.Store(int64(took))
				}
			}
		})
	}
	wg.Wait()
	if s := time.Duration(slowest.Load()); s > time.Second {
		t.Errorf("a check with a 20ms deadline took %s", s)
	}

	var live []gossip.Member
	for _, m := range n1.Members() {
		if m.Name != "node-2" {
			live = append(live, m)
		}
	}
	start := time.Now()
	n1.peers.Update(live)
	n1.fwd.Retire(live)
	if took := time.Since(start); took > timeout {
		t.Errorf("retiring the frozen owner took %s", took)
	}
	stopped := make(chan struct{})
	go func() { srv.Kill(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * timeout):
		gs.Stop()
		<-stopped
		t.Fatalf("stopping the node waited on the frozen owner for over %s", 10*timeout)
	}
	c.forget(srv.Node.Name())
}
