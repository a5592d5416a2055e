package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/ring"
)

// realCluster is a set of `tollgate serve` processes on loopback.
type realCluster struct {
	t     *testing.T
	nodes []*process
}

func startRealCluster(t *testing.T, n int) *realCluster {
	t.Helper()
	c := &realCluster{t: t}
	for i := range n {
		c.add(fmt.Sprintf("e2e-%d", i+1))
	}
	c.waitRing(n)
	return c
}

func (c *realCluster) add(name string) *process {
	var extra []string
	if len(c.nodes) > 0 {
		extra = []string{"--join", c.nodes[0].gossipAddr}
	}
	p := startServe(c.t, name, extra...)
	c.nodes = append(c.nodes, p)
	return p
}

func (c *realCluster) remove(p *process) {
	for i, q := range c.nodes {
		if q == p {
			c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
			return
		}
	}
}

type clusterView struct {
	Ring    []string `json:"ring"`
	Owner   string   `json:"owner"`
	Members []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"members"`
}

func view(t *testing.T, p *process, tenant string) clusterView {
	t.Helper()
	resp, err := http.Get("http://" + p.apiAddr + "/v1/cluster?tenant=" + tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v clusterView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitRing waits until every node sees size owners.
func (c *realCluster) waitRing(size int) time.Duration {
	c.t.Helper()
	start := time.Now()
	clustertest.Eventually(c.t, 20*time.Second, fmt.Sprintf("the nodes to converge on %d owners", size), func() bool {
		for _, p := range c.nodes {
			if len(view(c.t, p, "x").Ring) != size {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// send makes n checks round robin over the nodes and counts the admitted
// and degraded answers.
func (c *realCluster) send(n int, body string) (admitted, degraded int) {
	c.t.Helper()
	for i := range n {
		out := httpCheck(c.t, c.nodes[i%len(c.nodes)].apiAddr, body)
		if out["allowed"] == true {
			admitted++
		}
		if out["degraded"] == true {
			degraded++
		}
	}
	return admitted, degraded
}

// dayBody is a check against a limit that refills too slowly to matter
// within a test.
func dayBody(tenant string, limit int) string {
	return fmt.Sprintf(`{"tenant":%q,"hits":1,"limits":[{"name":"rpd","limit":%d,"period":"24h"}]}`, tenant, limit)
}

func ownedBy(t *testing.T, nodes []string, node, prefix string) string {
	t.Helper()
	ring := ring.New(nodes, nil)
	for i := range 10_000 {
		if tenant := fmt.Sprintf("%s-%d", prefix, i); ring.Owner(tenant) == node {
			return tenant
		}
	}
	t.Fatalf("no tenant for %s", node)
	return ""
}

func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := startRealCluster(t, 3)
	three := []string{"e2e-1", "e2e-2", "e2e-3"}
	four := append(three[:3:3], "e2e-4")

	t.Run("exact across nodes", func(t *testing.T) {
		admitted, degraded := c.send(300, dayBody("acme", 100))
		if admitted != 100 || degraded != 0 {
			t.Fatalf("admitted %d (degraded %d) of 300, want exactly 100", admitted, degraded)
		}
	})

	t.Run("scale out and in mid-window", func(t *testing.T) {
		tenant := ownedBy(t, four, "e2e-4", "scale")
		// Big enough that traffic during the join and the leave does not
		// use it all up: both hand-offs then carry a live count.
		const limit = 400
		first, _ := c.send(50, dayBody(tenant, limit))

		// Clients keep checking over the first three nodes while the
		// fourth joins and, later, leaves.
		base := append([]*process(nil), c.nodes[:3]...) // the traffic's own copy: c.nodes changes meanwhile
		traffic := func(stop <-chan struct{}, done chan<- int) {
			got := 0
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- got
					return
				default:
				}
				// Errors are expected from a node going away; they admit nothing.
				if out, status, err := postCheck(base[i%3].apiAddr, dayBody(tenant, limit)); err == nil && status == 200 && out["allowed"] == true {
					got++
				}
				time.Sleep(2 * time.Millisecond) // paces the load; not a wait
			}
		}
		stop, done := make(chan struct{}), make(chan int)
		go traffic(stop, done)
		p4 := c.add("e2e-4")
		c.waitRing(4)
		close(stop)
		during := <-done
		second, _ := c.send(10, dayBody(tenant, limit))

		stop, done = make(chan struct{}), make(chan int)
		go traffic(stop, done)
		p4.signal(t, syscall.SIGTERM)
		c.remove(p4)
		c.waitRing(3)
		if exit := p4.exit(); exit != nil {
			t.Errorf("e2e-4 after SIGTERM: %v", exit)
		}
		close(stop)
		during += <-done
		third, _ := c.send(limit, dayBody(tenant, limit))
		total := first + during + second + third
		t.Logf("admitted %d before the join, %d during the join and the leave, %d with 4 nodes, %d after: %d of limit %d", first, during, second, third, total, limit)
		if third == 0 || total != limit {
			t.Fatalf("admitted %d across a scale-out and scale-in under traffic (%d after), want exactly the limit, %d", total, third, limit)
		}
	})

	t.Run("owner killed", func(t *testing.T) {
		tenant := ownedBy(t, three, "e2e-3", "crash")
		before, _ := c.send(60, dayBody(tenant, 100))
		victim := c.nodes[2]
		if victim.name != "e2e-3" || view(t, c.nodes[0], tenant).Owner != "e2e-3" {
			t.Fatalf("expected e2e-3 to own %s", tenant)
		}
		killedAt := time.Now()
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.remove(victim)
		// Keep checking while the survivors find out.
		var during, degraded int
		for len(view(t, c.nodes[0], tenant).Ring) != 2 || len(view(t, c.nodes[1], tenant).Ring) != 2 {
			a, d := c.send(2, dayBody(tenant, 100))
			during, degraded = during+a, degraded+d
			if time.Since(killedAt) > 20*time.Second {
				t.Fatal("survivors did not declare the owner dead within 20s")
			}
		}
		detected := time.Since(killedAt)
		// The target is 2s on loopback; a loaded CI machine gets slack so
		// that this stays a measurement and not a flaky timer.
		if detected > 5*time.Second {
			t.Errorf("take-over took %s", detected)
		}
		after, afterDegraded := c.send(200, dayBody(tenant, 100))
		total := before + during + after
		t.Logf("SIGKILL of the owner: survivors took over after %s; admitted %d before, %d while it was down (%d degraded answers), %d after: %d of limit 100, overshoot %d%%",
			detected.Round(time.Millisecond), before, during, degraded, after, total, (total-100)*100/100)
		if afterDegraded != 0 {
			t.Fatalf("%d degraded answers after the take-over", afterDegraded)
		}
		if owner := view(t, c.nodes[0], tenant).Owner; owner == "e2e-3" || owner == "" {
			t.Fatalf("owner after take-over: %q", owner)
		}
		// The new owner goes on from the copy replication gave it, which
		// may miss the checks of the owner's last replication interval
		// (all 60 of them, sent that fast): at most the limit again, plus
		// what the policy let through in between. (Under steady load the
		// copy misses far less: TestOwnerKilledUnderLoad….)
		if total > 100+100+during {
			t.Fatalf("admitted %d in all", total)
		}
		for _, p := range c.nodes {
			v := view(t, p, tenant)
			for _, m := range v.Members {
				if m.Name == "e2e-3" && m.State != "dead" {
					t.Errorf("%s sees e2e-3 as %s, want dead", p.name, m.State)
				}
			}
		}
		if !strings.HasPrefix(view(t, c.nodes[0], tenant).Owner, "e2e-") {
			t.Fatal("no owner")
		}
	})
}
