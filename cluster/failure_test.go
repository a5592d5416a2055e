package cluster

import (
	"net"
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
	// node-2 stays alive in gossip, but node-1 reaches it at an address
	// that accepts connections and never answers.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		for {
			conn, err := hole.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	members := n1.Members()
	for i := range members {
		if members[i].Name == "node-2" {
			members[i].GRPCAddr = hole.Addr().String()
		}
	}
	n1.peers.update(members)
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
