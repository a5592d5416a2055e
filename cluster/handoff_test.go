package cluster

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/ring"
)

// tenantOwnedBy finds a tenant that ring gives to node.
func tenantOwnedBy(t *testing.T, ring *ring.Ring, node, prefix string) string {
	t.Helper()
	for i := range 10_000 {
		if tenant := fmt.Sprintf("%s-%d", prefix, i); ring.Owner(tenant) == node {
			return tenant
		}
	}
	t.Fatalf("no tenant for %s", node)
	return ""
}

func TestHandoffKeepsTheCountOnJoinAndLeave(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	// Tenants that the fourth node will take over when it joins.
	four := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, nil)
	joining := tenantOwnedBy(t, four, "node-4", "joining")
	leaving := tenantOwnedBy(t, four, "node-4", "leaving")

	if got := c.admitted(80, dayLimit(joining, 100)); got != 80 {
		t.Fatalf("before the join: %d admitted, want 80", got)
	}
	c.add("node-4")
	c.waitRing(4)
	if owner := c.running()[0].Node.Owner(joining); owner != "node-4" {
		t.Fatalf("%s is owned by %s after the join, want node-4", joining, owner)
	}
	if got := c.admitted(40, dayLimit(joining, 100)); got != 20 {
		t.Fatalf("after the join: %d of the remaining 20 admitted", got)
	}

	if got := c.admitted(80, dayLimit(leaving, 100)); got != 80 {
		t.Fatalf("before the leave: %d admitted, want 80", got)
	}
	c.leave("node-4")
	c.waitRing(3)
	if got := c.admitted(40, dayLimit(leaving, 100)); got != 20 {
		t.Fatalf("after the leave: %d of the remaining 20 admitted", got)
	}
	var sent float64
	for _, s := range c.running() {
		sent += s.Node.forwardingStats().HandoffReceived
	}
	if sent == 0 {
		t.Fatal("no hand-off was counted")
	}
}

// While a node joins, checks keep arriving at every node; the count stays
// exact throughout.
func TestHandoffUnderTrafficDuringJoin(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	four := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, nil)
	tenant := tenantOwnedBy(t, four, "node-4", "busy")
	c.admitted(50, dayLimit(tenant, 100))

	done := make(chan int)
	go func() {
		got := 0
		for i := 0; i < 200; i++ {
			nodes := c.running()
			resp, err := nodes[i%len(nodes)].Node.Check(t.Context(), ptr(dayLimit(tenant, 100)))
			if err != nil {
				t.Logf("check via %s: %v", nodes[i%len(nodes)].Node.Name(), err)
			}
			if err == nil && resp.Allowed {
				got++
			}
			time.Sleep(time.Millisecond) // paces the load
		}
		done <- got
	}()
	c.add("node-4")
	got := <-done
	c.waitRing(4)
	got += c.admitted(60, dayLimit(tenant, 100))
	if got != 50 {
		t.Fatalf("admitted %d after the first 50, want exactly 50 more", got)
	}
}

func ptr[T any](v T) *T { return &v }

// While a node leaves, checks keep arriving at every node, the leaving one
// included; the count stays exact throughout.
func TestHandoffUnderTrafficDuringLeave(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 4)
	tenant := tenantOwnedBy(t, c.running()[0].Node.currentRing(), "node-4", "draining")
	c.admitted(50, dayLimit(tenant, 100))

	stop := make(chan struct{})
	done := make(chan int)
	var sent atomic.Int64
	go func() {
		got := 0
		for i := 0; i < 100_000; i++ { // stop ends it long before
			select {
			case <-stop:
				done <- got
				return
			default:
			}
			nodes := c.running()
			resp, err := nodes[i%len(nodes)].Node.Check(t.Context(), ptr(dayLimit(tenant, 100)))
			if err != nil {
				t.Logf("check via %s: %v", nodes[i%len(nodes)].Node.Name(), err)
			}
			if err == nil && resp.Allowed {
				got++
			}
			sent.Add(1)
			time.Sleep(500 * time.Microsecond) // paces the load
		}
		<-stop
		done <- got
	}()
	clustertest.Eventually(t, 5*time.Second, "traffic to reach every node twice", func() bool { return sent.Load() >= 8 })
	c.leave("node-4")
	c.waitRing(3)
	close(stop)
	got := <-done
	got += c.admitted(60, dayLimit(tenant, 100))
	if got != 50 {
		t.Fatalf("admitted %d after the first 50, want exactly 50 more", got)
	}
	for _, s := range c.running() {
		if d := s.Node.forwardingStats().Degraded; d != 0 {
			t.Errorf("%s decided %v checks by failure policy during a graceful leave", s.Node.Name(), d)
		}
	}
}

func TestHandoffIsCountedInMetrics(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	four := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, nil)
	tenant := tenantOwnedBy(t, four, "node-4", "counted")
	c.admitted(10, dayLimit(tenant, 100))
	n4 := c.add("node-4")
	c.waitRing(4)
	clustertest.Eventually(t, 5*time.Second, "node-4 to count the hand-off it received", func() bool {
		// As /metrics shows them: gathered from the node's registry.
		families, err := n4.Node.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		received := func(name string) float64 {
			for _, f := range families {
				for _, m := range f.GetMetric() {
					if f.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "received" {
						return m.GetCounter().GetValue()
					}
				}
			}
			return -1
		}
		return received("tollgate_handoff_buckets_total") == 1 && received("tollgate_handoff_bytes_total") > 0
	})
}
