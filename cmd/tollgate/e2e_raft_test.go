package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster/clustertest"
)

// durableNode is a `tollgate serve` with a data dir and fixed ports, so
// that it can be killed and started again as the same member.
type durableNode struct {
	name, dir                 string
	api, grpc, gossip, raftTo string
	join                      []string
	p                         *process
}

// nextPort hands out ports below the kernel's ephemeral range (32768 and
// up), where ports that tests and clients bind with :0 come from: a port
// found free here stays free until the node that is to use it binds it.
// It only counts up, so tests running in parallel never get the same port,
// nor one a killed node of another test is to take back.
var nextPort atomic.Int32

func init() { nextPort.Store(20000 + rand.Int32N(8000)) }

// freeAddr returns a loopback address whose port is free for TCP and UDP
// (gossip uses both).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 1000 {
		port := nextPort.Add(1)
		if port >= 32768 {
			break // the ephemeral range: :0 binds could take it
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatal("no free port below 32768")
	return ""
}

func newDurableCluster(t *testing.T, n int) []*durableNode {
	nodes := make([]*durableNode, n)
	for i := range nodes {
		nodes[i] = &durableNode{name: fmt.Sprintf("d-%d", i+1), dir: t.TempDir(),
			api: freeAddr(t), grpc: freeAddr(t), gossip: freeAddr(t), raftTo: freeAddr(t)}
	}
	for _, d := range nodes {
		for _, o := range nodes {
			if o != d {
				d.join = append(d.join, o.gossip)
			}
		}
	}
	for _, d := range nodes {
		d.start(t)
	}
	return nodes
}

func (d *durableNode) start(t *testing.T) {
	t.Helper()
	d.p = startServe(t, d.name, "--in-memory=false", "--data-dir", d.dir, "--bootstrap-expect", "3",
		"--api-addr", d.api, "--grpc-addr", d.grpc, "--peer-addr", "127.0.0.1:0", "--gossip-addr", d.gossip, "--raft-addr", d.raftTo,
		"--join", strings.Join(d.join, ","))
}

func (d *durableNode) kill(t *testing.T) {
	t.Helper()
	d.p.signal(t, syscall.SIGKILL)
	_ = d.p.exit() // killed: the exit is an error
}

func (d *durableNode) stop(t *testing.T) {
	t.Helper()
	d.p.signal(t, syscall.SIGTERM)
	d.p.waitExit(t, 20*time.Second)
}

// callAdmin sends an admin API call with the e2e token and body, raw JSON
// (none if empty), and decodes a 2xx answer into out; another answer is an
// *admin.Error.
func callAdmin(addr, method, path, body string, out any) error {
	c, err := admin.NewClient(addr, "e2e-secret", 10*time.Second)
	if err != nil {
		return err
	}
	var in any
	if body != "" {
		in = json.RawMessage(body)
	}
	// Called from polls that have no context; the client's timeout
	// bounds the call.
	return c.Do(context.Background(), method, path, in, out)
}

// tenantsOn lists the tenant ids a node has.
func tenantsOn(d *durableNode) map[string]bool {
	var out struct {
		Tenants []struct {
			ID string `json:"id"`
		} `json:"tenants"`
	}
	if err := callAdmin(d.api, "GET", "/admin/v1/tenants", "", &out); err != nil {
		return nil
	}
	ids := map[string]bool{}
	for _, t := range out.Tenants {
		ids[t.ID] = true
	}
	return ids
}

// writeTenant creates a tenant through d, retrying while the cluster has no
// leader yet; it returns once the write is acknowledged.
func writeTenant(t *testing.T, d *durableNode, id string) {
	t.Helper()
	clustertest.Eventually(t, 20*time.Second, "an acknowledged write of "+id, func() bool {
		err := callAdmin(d.api, "POST", "/admin/v1/tenants", fmt.Sprintf(`{"id":%q,"plan":"gold"}`, id), nil)
		var e *admin.Error
		return err == nil || (errors.As(err, &e) && e.Status == http.StatusConflict)
	})
}

func TestConfigSurvivesKillingEveryNode(t *testing.T) {
	t.Parallel()
	nodes := newDurableCluster(t, 3)
	acked := map[string]bool{}
	for cycle := range 5 {
		for i, d := range nodes {
			id := fmt.Sprintf("c%d-n%d", cycle, i)
			writeTenant(t, d, id)
			acked[id] = true
		}
		// kill -9 of all three right after the acknowledged writes.
		for _, d := range nodes {
			d.kill(t)
		}
		for _, d := range nodes {
			d.start(t)
		}
		start := time.Now()
		clustertest.Eventually(t, 30*time.Second, "every acknowledged write on every restarted node", func() bool {
			for _, d := range nodes {
				have := tenantsOn(d)
				for id := range acked {
					if !have[id] {
						return false
					}
				}
			}
			return true
		})
		t.Logf("cycle %d: %d acknowledged writes back on all nodes %s after the restart", cycle+1, len(acked), time.Since(start).Round(time.Millisecond))
	}
}

func TestUsageSurvivesAGracefulStopAndQuorumLossRefusesWrites(t *testing.T) {
	t.Parallel()
	nodes := newDurableCluster(t, 3)
	writeTenant(t, nodes[0], "metered")
	clustertest.Eventually(t, 10*time.Second, "the tenant on every node", func() bool {
		for _, d := range nodes {
			if !tenantsOn(d)["metered"] {
				return false
			}
		}
		return true
	})
	var cv clusterView
	if err := callAdmin(nodes[1].api, "GET", "/v1/cluster?tenant=metered", "", &cv); err != nil {
		t.Fatal(err)
	}
	var owner, other *durableNode
	for _, d := range nodes {
		if d.name == cv.Owner {
			owner = d
		} else {
			other = d
		}
	}
	if owner == nil {
		t.Fatalf("no owner for metered in %+v", cv)
	}
	// Admitted on the owner, then a graceful stop before the next
	// periodic flush: the stop flushes it.
	if out := httpCheck(t, owner.api, `{"tenant":"metered","requests":1,"tokens":700}`); out["allowed"] != true {
		t.Fatalf("plan check: %v", out)
	}
	owner.stop(t)
	usage := func(d *durableNode) admin.UsageReport {
		var u admin.UsageReport
		_ = callAdmin(d.api, "GET", "/admin/v1/tenants/metered/usage", "", &u)
		return u
	}
	if u := usage(other); u.Total.Tokens != 700 || u.Total.Requests != 1 {
		t.Fatalf("usage after the owner's graceful stop: %+v, want 700 tokens in 1 request", u)
	}
	owner.start(t)
	clustertest.Eventually(t, 20*time.Second, "the restarted owner to have the usage in its log", func() bool {
		u := usage(owner)
		return u.Total.Tokens == 700
	})

	// Quorum loss: two of three killed; writes fail fast, checks go on.
	survivor := nodes[0]
	for _, d := range nodes[1:] {
		d.kill(t)
	}
	start := time.Now()
	err := callAdmin(survivor.api, "POST", "/admin/v1/tenants", `{"id":"late","plan":"gold"}`, nil)
	took := time.Since(start)
	var refused *admin.Error
	if !errors.As(err, &refused) || refused.Status != http.StatusServiceUnavailable || refused.Code != "no_quorum" {
		t.Fatalf("write without quorum: %v", err)
	}
	t.Logf("write without quorum refused with 503 after %s", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Fatalf("write without quorum took %s to fail", took)
	}
	if _, status, err := postCheck(survivor.api, `{"tenant":"metered","requests":1,"tokens":5}`); err != nil || status != 200 {
		t.Fatalf("plan check without quorum: %d %v", status, err)
	}
}

// Twenty kill -9s of a random node while checks keep coming: every write
// acknowledged before a kill is on every node after it, no node panics,
// and each killed node is back in the ring before the next kill.
func TestTwentyKillsOfARandomNodeUnderLoad(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	nodes := newDurableCluster(t, 3)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var checks, answered atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			checks.Add(1)
			body := fmt.Sprintf(`{"tenant":"load-%d","hits":1,"limits":[{"name":"rps","limit":50,"period":"1s"}]}`, i%20)
			if _, status, err := postCheck(nodes[i%3].api, body); err == nil && status == 200 {
				answered.Add(1)
			}
		}
	}()
	acked := map[string]bool{}
	rejoin := make([]time.Duration, 0, 20)
	running := func(d *durableNode) {
		t.Helper()
		select {
		case err := <-d.p.done:
			d.p.done <- err
			t.Fatalf("%s exited by itself: %v; its log: %s", d.name, err, d.p.logText())
		default:
		}
		if strings.Contains(d.p.logText(), "panic") {
			t.Fatalf("%s logged a panic: %s", d.name, d.p.logText())
		}
	}
	why := "" // what the last look at the cluster found missing
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last state: %s", why)
			for _, d := range nodes {
				t.Logf("%s's log: %s", d.name, d.p.logText())
			}
		}
	})
	for cycle := range 20 {
		for _, d := range nodes {
			running(d)
		}
		v := rand.IntN(3)
		victim, writer := nodes[v], nodes[(v+1)%3]
		id := fmt.Sprintf("k%d", cycle)
		writeTenant(t, writer, id)
		acked[id] = true
		victim.kill(t)
		killed := time.Now()
		victim.start(t)
		back := func() bool {
			for _, d := range nodes {
				var cv clusterView
				if err := callAdmin(d.api, "GET", "/v1/cluster", "", &cv); err != nil || len(cv.Ring) != 3 {
					why = fmt.Sprintf("%s: ring %v, members %+v, err %v", d.name, cv.Ring, cv.Members, err)
					return false
				}
				have := tenantsOn(d)
				for id := range acked {
					if !have[id] {
						why = fmt.Sprintf("%s: no tenant %s", d.name, id)
						return false
					}
				}
			}
			return true
		}
		clustertest.Eventually(t, 30*time.Second, fmt.Sprintf("cycle %d: %s back in every ring with every acknowledged write", cycle+1, victim.name), back)
		rejoin = append(rejoin, time.Since(killed))
	}
	cancel()
	<-done
	slowest := slices.Max(rejoin)
	t.Logf("20 kill -9 cycles: %d acknowledged writes on every node after each; rejoined in at most %s; %d of %d checks answered 200 meanwhile",
		len(acked), slowest.Round(time.Millisecond), answered.Load(), checks.Load())
	for _, d := range nodes {
		running(d)
	}
}
