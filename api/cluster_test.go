package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

const testAdminToken = "test-admin-token"

// testCluster runs Servers in this process on loopback ports, sharing one
// manual clock so that limits do not refill while a test runs. Only the
// test's goroutine uses it.
type testCluster struct {
	t       testing.TB
	clock   *limiter.ManualClock
	log     *slog.Logger
	tweak   func(*ServerConfig) // applied to every server's configuration, if set
	servers map[string]*Server  // nil once stopped
	order   []string
}

// newTestCluster starts n nodes that gossip, without Raft.
func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return startTestCluster(t, n, nil)
}

// newRaftCluster starts n nodes that form one Raft cluster in memory, with
// the admin API open to testAdminToken, and waits until every node has the
// default plans.
func newRaftCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	c := startTestCluster(t, n, func(cfg *ServerConfig) {
		cfg.Node.RaftListen, cfg.Node.InMemory = "127.0.0.1:0", true
		cfg.Auth.Admin = TokenAuth{Token: testAdminToken}
	})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Plan("platinum"); return ok })
	return c
}

// startTestCluster starts n nodes, node-1 to node-n, each joining node-1,
// and waits until every one of them owns part of the ring. With Raft,
// BootstrapExpect stays 0 as in cluster's own tests: node-1, which joins
// nobody, forms the Raft cluster alone and its leader adds the others.
func startTestCluster(t testing.TB, n int, tweak func(*ServerConfig)) *testCluster {
	t.Helper()
	c := &testCluster{
		t:       t,
		clock:   limiter.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)),
		log:     clustertest.Logger(t), // its Cleanup, registered first, prints after the nodes stop
		tweak:   tweak,
		servers: map[string]*Server{},
	}
	t.Cleanup(c.stopAll)
	for i := range n {
		c.add(fmt.Sprintf("node-%d", i+1))
	}
	c.waitRing(n)
	return c
}

// add starts a node that joins the cluster through the first running node.
func (c *testCluster) add(name string) *Server {
	c.t.Helper()
	var join []string
	if running := c.running(); len(running) > 0 {
		join = []string{running[0].GossipAddr()}
	}
	cfg := ServerConfig{
		APIListen: "127.0.0.1:0", GRPCListen: "127.0.0.1:0", PeerListen: "127.0.0.1:0",
		Node: cluster.Config{
			NodeName: name, Clock: c.clock, Logger: c.log.With("node", name),
			GossipAddr: "127.0.0.1:0", Join: join,
		},
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	s, err := StartServer(c.t.Context(), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.servers[name] = s
	c.order = append(c.order, name)
	return s
}

// running returns the nodes not stopped, in the order they started.
func (c *testCluster) running() []*Server {
	var out []*Server
	for _, name := range c.order {
		if s := c.servers[name]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *testCluster) server(name string) *Server { return c.servers[name] }

// leave stops a node gracefully: it hands its tenants off and leaves.
func (c *testCluster) leave(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	if err := c.servers[name].Shutdown(ctx); err != nil {
		c.t.Fatalf("shutting down %s: %v", name, err)
	}
	c.servers[name] = nil
}

// kill stops a node as a crash would.
func (c *testCluster) kill(name string) {
	c.servers[name].Kill()
	c.servers[name] = nil
}

func (c *testCluster) stopAll() {
	for _, name := range c.order {
		if s := c.servers[name]; s != nil {
			s.Kill()
			c.servers[name] = nil
		}
	}
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

// waitConfig waits until every running node's configuration satisfies ok.
func (c *testCluster) waitConfig(ok func(*config.View) bool) {
	c.t.Helper()
	clustertest.Eventually(c.t, 10*time.Second, "the configuration on every node", func() bool {
		for _, s := range c.running() {
			if !ok(s.Node.Config()) {
				return false
			}
		}
		return true
	})
}

// admitted sends n checks round robin over the running nodes and counts
// the admitted ones.
func (c *testCluster) admitted(n int, req quota.CheckRequest) int {
	c.t.Helper()
	nodes := c.running()
	got := 0
	for i := range n {
		resp, err := nodes[i%len(nodes)].Node.Check(c.t.Context(), &req)
		if err != nil {
			c.t.Fatal(err)
		}
		if resp.Allowed {
			got++
		}
	}
	return got
}

// dayLimit refills so slowly that a test sees no refill.
func dayLimit(tenant string, limit int64) quota.CheckRequest {
	return quota.CheckRequest{Tenant: tenant, Hits: 1, Limits: []limiter.Limit{{Name: "rpd", Limit: limit, Period: 24 * time.Hour}}}
}

// call sends an admin or API request to s, with the admin token, and
// decodes the JSON answer into out if it is not nil.
func call(t testing.TB, s *Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+s.APIAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && json.Unmarshal(data, out) != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}
