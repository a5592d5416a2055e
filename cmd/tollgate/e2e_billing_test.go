package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/proxy/mockupstream"
)

// Streams in flight on a gateway node that is killed -9: once the node is
// back on its data directory, its journal bills them what they had
// delivered, to within the journal's last write.
func TestStreamsCutOffByAKillAreBilledWhenTheNodeReturns(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const (
		streams    = 5
		chunkDelay = 20 * time.Millisecond
		// What the journal may miss of each stream: its last write
		// interval (100 ms) and the batch being written when the kill came.
		missable = 2 * int64(100*time.Millisecond/chunkDelay)
	)
	dir := t.TempDir()
	c := &realCluster{t: t}
	c.add("e2e-1")
	c.add("e2e-2")
	disk := []string{"--in-memory=false", "--data-dir", dir}
	gw := startServe(t, "e2e-3", append(disk, "--join", c.nodes[0].gossipAddr)...)
	c.nodes = append(c.nodes, gw)
	c.waitRing(3)

	slow := httptest.NewServer(mockupstream.New(mockupstream.Options{CompletionTokens: 5000, ChunkDelay: chunkDelay}))
	t.Cleanup(slow.Close)
	api := c.nodes[0].apiAddr
	mustAdmin(t, api, "PUT", "/admin/v1/providers/slow", fmt.Sprintf(`{"name":"slow","base_url":"%s/v1","models":["slow-chat"],"prompt_price_per_million":2,"completion_price_per_million":6}`, slow.URL))
	// Owned by a node that stays up: what is at stake is the gateway's
	// part, the requests it was serving.
	tenant := ownedBy(t, []string{"e2e-1", "e2e-2", "e2e-3"}, "e2e-1", "bill")
	clustertest.Eventually(t, 10*time.Second, "the tenant created (the default plans come with the first leader)", func() bool {
		return callAdmin(api, "POST", "/admin/v1/tenants", fmt.Sprintf(`{"id":%q,"plan":"platinum"}`, tenant), nil) == nil
	})
	var key admin.Key
	if err := callAdmin(api, "POST", "/admin/v1/tenants/"+tenant+"/keys", "", &key); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, "the key on e2e-3's gateway", func() bool {
		code, _ := (&gatewayRig{keys: nil}).models(gw, key.Key)
		return code == 200
	})

	// Streams through e2e-3, each counting the content chunks it gets.
	var received [streams]atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			body := `{"model":"slow-chat","stream":true,"max_tokens":5000,"messages":[{"role":"user","content":"tell me everything"}]}`
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+gw.httpAddr+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line := sc.Text(); strings.HasPrefix(line, "data: {") {
					received[i].Add(1)
				}
			}
		})
	}
	clustertest.Eventually(t, 20*time.Second, "every stream to be well under way", func() bool {
		for i := range received {
			if received[i].Load() < 40 {
				return false
			}
		}
		return true
	})
	if err := gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = gw.exit()
	wg.Wait()
	var delivered int64
	for i := range received {
		delivered += received[i].Load()
	}
	c.remove(gw)

	// Back on its addresses and its data directory.
	back := startServe(t, "e2e-3", append(disk, "--join", c.nodes[0].gossipAddr,
		"--api-addr", gw.apiAddr, "--http-addr", gw.httpAddr, "--grpc-addr", gw.grpcAddr, "--gossip-addr", gw.gossipAddr)...)
	c.nodes = append(c.nodes, back)
	clustertest.Eventually(t, 30*time.Second, "the restarted node's journal to empty", func() bool {
		return journalRequests(back) == 0
	})
	var completion, requests int64
	clustertest.Eventually(t, 10*time.Second, "the cut-off streams in the ledger", func() bool {
		requests, _, completion, _ = (&gatewayRig{realCluster: c}).usage(t, tenant)
		return requests >= streams
	})
	t.Logf("%d streams cut off by kill -9 had delivered %d content chunks to their clients; billed after the restart: %d requests, %d completion tokens (the bound: %d less at most)",
		streams, delivered, requests, completion, streams*missable)
	// The gateway may have relayed a chunk or two more than the clients
	// read before the kill; never a whole interval more.
	if requests != streams || completion < delivered-streams*missable || completion > delivered+streams*missable {
		t.Fatalf("billed %d requests and %d completion tokens for %d streams that delivered %d", requests, completion, streams, delivered)
	}
	if !strings.Contains(back.logText(), "settling gateway requests a previous run left in its journal") {
		t.Fatal("the restarted node did not say it settled its journal")
	}
}

// journalRequests reads tollgate_journal_requests from p's /metrics (-1
// if it cannot).
func journalRequests(p *process) int {
	resp, err := http.Get("http://" + p.apiAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tollgate_journal_requests "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
