package cluster

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOwnerFailureFallsBackThenSurvivorsTakeOver(t *testing.T) {
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
	closed.FailurePolicy = PolicyClosed
	if resp := c.check(0, closed); !resp.Degraded || resp.Allowed || resp.Limits[0].RetryAfter <= 0 {
		t.Fatalf("owner down, policy closed: %+v", resp)
	}
	open := dayLimit(tenant, 90)
	open.FailurePolicy = PolicyOpen
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
	c := newTestCluster(t, 3)
	n1 := c.running()[0].Node
	tenant := tenantOwnedBy(t, n1.currentRing(), "node-2", "slow")
	other := tenantOwnedBy(t, n1.currentRing(), "node-3", "fine")
	silence(t, n1, "node-2")
	n1.fwd.cfg.Timeout = 300 * time.Millisecond

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
			members[i].GRPCAddr = hole.Addr().String()
		}
	}
	n.peers.update(members)
}

// Checks beyond what may wait for a silent owner are decided by the failure
// policy at once, not after the forward timeout.
func TestAFullOwnerQueueAppliesThePolicyAtOnce(t *testing.T) {
	const timeout = 3 * time.Second
	c := newTestCluster(t, 3, ForwardConfig{BatchMax: 2, Timeout: timeout})
	n1 := c.running()[0].Node
	tenant := tenantOwnedBy(t, n1.currentRing(), "node-2", "stuck")
	silence(t, n1, "node-2")
	const callers = 30 // one batch of 2 out, 8 waiting: 20 beyond
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
