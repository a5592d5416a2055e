package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// testCluster runs nodes in this process on loopback ports, sharing one
// manual clock so that limits do not refill while a test runs.
type testCluster struct {
	t       testing.TB
	clock   *limiter.ManualClock
	forward peer.ForwardConfig
	log     *slog.Logger
	tweak   func(*Config) // applied to every node's configuration, if set
	// intercept, if set, sees every peer call a node added from now on
	// serves (to fail some, say).
	intercept grpc.UnaryServerInterceptor

	mu      sync.Mutex // traffic goroutines read the members while a test changes them
	servers map[string]*Server
	order   []string
}

func newTestCluster(t testing.TB, n int, forward ...peer.ForwardConfig) *testCluster {
	t.Helper()
	return startTestCluster(t, n, nil, forward...)
}

func startTestCluster(t testing.TB, n int, tweak func(*Config), forward ...peer.ForwardConfig) *testCluster {
	t.Helper()
	return emptyTestCluster(t, tweak, forward...).start(n)
}

// emptyTestCluster is a cluster of no nodes yet, for a test to set up
// before it starts them.
func emptyTestCluster(t testing.TB, tweak func(*Config), forward ...peer.ForwardConfig) *testCluster {
	c := &testCluster{
		tweak:   tweak,
		t:       t,
		clock:   limiter.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)),
		servers: map[string]*Server{},
		log:     clustertest.Logger(t),
	}
	if len(forward) > 0 {
		c.forward = forward[0]
	}
	t.Cleanup(c.stopAll)
	return c
}

// start adds nodes node-1 to node-n and waits until they form one ring.
func (c *testCluster) start(n int) *testCluster {
	c.t.Helper()
	for i := range n {
		c.add(fmt.Sprintf("node-%d", i+1))
	}
	c.waitRing(n)
	return c
}

// add starts a node that joins the cluster through any running node.
func (c *testCluster) add(name string) *Server {
	c.t.Helper()
	var join []string
	for _, s := range c.running() {
		join = []string{s.GossipAddr()}
		break
	}
	cfg := Config{
		NodeName: name, Clock: c.clock, Logger: c.log.With("node", name),
		GossipAddr: "127.0.0.1:0", Join: join, Forward: c.forward,
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	var opts []grpc.ServerOption
	if c.intercept != nil {
		opts = append(opts, grpc.UnaryInterceptor(c.intercept))
	}
	srv, err := startNode(c.t.Context(), cfg, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.servers[name] = srv
	c.order = append(c.order, name)
	c.mu.Unlock()
	return srv
}

func (c *testCluster) running() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Server
	for _, name := range c.order {
		if s := c.servers[name]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// waitRing waits until every running node is ready and sees size owners.
func (c *testCluster) waitRing(size int) {
	c.t.Helper()
	clustertest.Eventually(c.t, 10*time.Second, fmt.Sprintf("every node to see %d owners", size), func() bool {
		for _, s := range c.running() {
			if !s.Node.Ready() || s.Node.RingSize() != size {
				return false
			}
		}
		return true
	})
}

// leave stops a node gracefully.
func (c *testCluster) leave(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.server(name).Shutdown(ctx); err != nil {
		c.t.Fatalf("shutting down %s: %v", name, err)
	}
	c.forget(name)
}

func (c *testCluster) server(name string) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[name]
}

func (c *testCluster) forget(name string) {
	c.mu.Lock()
	c.servers[name] = nil
	c.mu.Unlock()
}

// kill stops a node as a crash would.
func (c *testCluster) kill(name string) {
	c.server(name).Kill()
	c.forget(name)
}

func (c *testCluster) stopAll() {
	for _, s := range c.running() {
		s.Kill()
	}
}

// check sends one check to the i-th running node (round robin).
func (c *testCluster) check(i int, req quota.CheckRequest) *quota.CheckResponse {
	c.t.Helper()
	nodes := c.running()
	resp, err := nodes[i%len(nodes)].Node.Check(c.t.Context(), &req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// admitted sends n checks round robin and counts the admitted ones.
func (c *testCluster) admitted(n int, req quota.CheckRequest) int {
	c.t.Helper()
	got := 0
	for i := range n {
		if c.check(i, req).Allowed {
			got++
		}
	}
	return got
}

// dayLimit refills so slowly that a test sees no refill.
func dayLimit(tenant string, limit int64) quota.CheckRequest {
	return quota.CheckRequest{Tenant: tenant, Hits: 1, Limits: []limiter.Limit{{Name: "rpd", Limit: limit, Period: 24 * time.Hour}}}
}

func TestClusterLimitIsExactWhicheverNodeIsCalled(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	req := dayLimit("acme", 100)
	owner := c.running()[0].Node.Owner("acme")
	for i := range 300 {
		resp := c.check(i, req)
		if resp.Owner != owner || resp.Degraded {
			t.Fatalf("check %d decided by %s (degraded %v), owner is %s", i, resp.Owner, resp.Degraded, owner)
		}
		if want := i < 100; resp.Allowed != want {
			t.Fatalf("check %d: allowed=%v, want %v", i, resp.Allowed, want)
		}
	}
	for _, s := range c.running() {
		if s.Node.Name() != owner && s.Node.forwardingStats().Forwarded != 100 {
			t.Errorf("%s forwarded %v checks, want 100", s.Node.Name(), s.Node.forwardingStats().Forwarded)
		}
	}
}

func TestConcurrentForwardsAreBatched(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	nodes := c.running()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				req := dayLimit(fmt.Sprintf("t-%d-%d", g, i), 10)
				if _, err := nodes[g%3].Node.Check(t.Context(), &req); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	batched := false
	for _, s := range nodes {
		st := s.Node.forwardingStats()
		t.Logf("%s: %v forwarded in %d batches (mean %.1f)", s.Node.Name(), st.Forwarded, st.Batches, st.MeanBatchSize)
		batched = batched || st.MeanBatchSize > 1.5
	}
	if !batched {
		t.Fatal("64 concurrent callers never shared a batch")
	}
}

// Forwarded checks reuse their records and peer messages. Callers whose
// deadlines end before, during or after their batch is written must never
// see another check's answer, and checks given time must be exact.
func TestCallersThatGiveUpNeverGetAnotherChecksAnswer(t *testing.T) {
	t.Parallel()
	// The patient checks wait out a loaded machine's stalls rather than
	// fall to the failure policy, whose answers carry a share of the limit.
	c := newTestCluster(t, 3, peer.ForwardConfig{Timeout: 10 * time.Second})
	nodes := c.running()
	const callers, checks = 24, 60
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			// Each caller has its own tenant and limit, so a mixed-up
			// answer shows in the limit it reports.
			limit := int64(1000 + g)
			patient := dayLimit(fmt.Sprintf("patient-%d", g), limit)
			hasty := dayLimit(fmt.Sprintf("hasty-%d", g), limit)
			node := nodes[g%len(nodes)].Node
			admitted := 0
			for i := range checks {
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%7)*40*time.Microsecond)
				if resp, err := node.Check(ctx, &hasty); err == nil && !resp.Degraded && resp.Limits[0].Limit != limit {
					t.Errorf("caller %d: a hasty check got an answer for limit %d", g, resp.Limits[0].Limit)
				}
				cancel()
				resp, err := node.Check(t.Context(), &patient)
				if err != nil {
					t.Errorf("caller %d: %v", g, err)
					return
				}
				if resp.Limits[0].Limit != limit || resp.Limits[0].Name != "rpd" {
					t.Errorf("caller %d: answer for limit %s=%d, want rpd=%d", g, resp.Limits[0].Name, resp.Limits[0].Limit, limit)
				}
				if resp.Allowed {
					admitted++
				}
				if want := limit - int64(admitted); resp.Limits[0].Remaining != want {
					t.Errorf("caller %d, check %d: %d remaining, want %d", g, i, resp.Limits[0].Remaining, want)
				}
			}
		})
	}
	wg.Wait()
}

// A batch that goes unanswered (its caller's deadline passes before the
// owner answers) puts the stream on the sender goroutine's slow path; the
// next answer takes it off again.
func TestAnAnswerAfterATimeoutPutsTheStreamBackInUse(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 2)
	n1 := c.running()[0].Node
	tenant := tenantOwnedBy(t, n1.currentRing(), "node-2", "hasty")
	req := dayLimit(tenant, 1000)
	c.check(0, req) // the stream is open
	clustertest.Eventually(t, 5*time.Second, "a batch to end unanswered", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Microsecond)
		defer cancel()
		_, _ = n1.Check(ctx, &req)
		open, usable := n1.fwd.StreamUsable("node-2")
		return open && !usable
	})
	clustertest.Eventually(t, 5*time.Second, "an answered batch to put the stream back in use", func() bool {
		c.check(0, req)
		open, usable := n1.fwd.StreamUsable("node-2")
		return open && usable
	})
}

func TestReleaseReachesTheOwner(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	nodes := c.running()
	tenant := tenantOwnedBy(t, nodes[0].Node.currentRing(), "node-3", "leases")
	conc := quota.CheckRequest{Tenant: tenant, Hits: 1, Limits: []limiter.Limit{{Name: "conc", Algorithm: limiter.Concurrency, Limit: 1, Period: time.Hour}}}
	first := c.check(0, conc)
	if !first.Allowed || first.Limits[0].Lease == 0 || c.check(1, conc).Allowed {
		t.Fatalf("one lease: %+v", first)
	}
	rel := &quota.ReleaseRequest{Tenant: tenant, Limit: conc.Limits[0], Lease: first.Limits[0].Lease}
	if err := nodes[0].Node.Release(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
	if !c.check(1, conc).Allowed {
		t.Fatal("the lease released through a non-owner is still held")
	}
}
