package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/proxy/mockupstream"
)

// The gateway's cost, measured against a plain reverse proxy in front of
// the same mock upstream, in one run:
//
//	go test -run '^$' -bench Gateway -benchtime 3s -count 5 ./cmd/tollgate
//
// "throughput" runs 64 concurrent clients; "latency" one client, whose
// p50 is reported as p50-µs. Compare the figures of one run.
func BenchmarkGateway(b *testing.B) {
	mock := httptest.NewServer(mockupstream.New(mockupstream.Options{CompletionTokens: 16}))
	defer mock.Close()
	target, _ := url.Parse(mock.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	// The same connection pool as the gateway's, so that both keep their
	// upstream connections under load.
	rp.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}
	plain := httptest.NewServer(rp)
	defer plain.Close()

	one := startBenchCluster(b, 1, mock.URL+"/v1")
	three := startBenchCluster(b, 3, mock.URL+"/v1")
	fronts := []struct {
		name  string
		addrs []string
		key   string
	}{
		{"plain-proxy", []string{plain.URL}, ""},
		{"tollgate-1-node", one.gateways, one.key},
		{"tollgate-3-nodes", three.gateways, three.key},
	}
	for _, f := range fronts {
		b.Run("throughput/"+f.name, func(b *testing.B) { benchFront(b, f.addrs, f.key, 64) })
	}
	for _, f := range fronts {
		b.Run("latency/"+f.name, func(b *testing.B) { benchFront(b, f.addrs, f.key, 1) })
	}
}

const benchBody = `{"model":"mock-chat","messages":[{"role":"user","content":"What is a token bucket?"}],"max_tokens":16}`

// benchFront sends chat completions to addrs round-robin from clients
// concurrent clients and reports the p50 latency.
func benchFront(b *testing.B, addrs []string, key string, clients int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 1024}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range clients {
		wg.Go(func() {
			var mine []time.Duration
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				req, _ := http.NewRequest("POST", addrs[i%int64(len(addrs))]+"/v1/chat/completions", strings.NewReader(benchBody))
				req.Header.Set("Content-Type", "application/json")
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed", f, b.N)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	}
}

// benchCluster is an in-process cluster with the gateway on every node,
// one provider (the mock upstream) and one tenant with limits far beyond
// what the benchmark asks.
type benchCluster struct {
	gateways []string
	key      string
}

func startBenchCluster(b *testing.B, n int, upstream string) *benchCluster {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	base := defaultConfig()
	base.InMemory, base.BootstrapExpect, base.adminOpen = true, n, true
	base.LogFormat, base.LogLevel = "json", "info" // the audit line is part of the cost
	log, _ := base.logger(io.Discard)
	var nodes []*runningNode
	b.Cleanup(func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			_ = nodes[i].Shutdown(sctx)
			c()
		}
		cancel()
	})
	out := &benchCluster{}
	for i := range n {
		cfg := base
		cfg.NodeName = fmt.Sprintf("bench-%d", i+1)
		cfg.HTTPAddr, cfg.APIAddr, cfg.GRPCAddr, cfg.GossipAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		if i > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		node, err := startNode(ctx, cfg, log)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, node)
		out.gateways = append(out.gateways, "http://"+node.HTTPAddr())
	}
	if err := waitForMembers(ctx, nodes); err != nil {
		b.Fatal(err)
	}
	c, err := admin.NewClient(nodes[0].APIAddr(), "", 0)
	if err != nil {
		b.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(c.PutPlan(ctx, admin.Plan{Name: "bench", RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, TokensPerMonth: 1 << 55, MaxConcurrent: 100_000}))
	must(c.PutProvider(ctx, admin.Provider{Name: "mock", BaseURL: upstream, Models: []string{"mock-chat"}, PromptPricePerMillion: 1, CompletionPricePerMillion: 2}))
	must(c.PutTenant(ctx, admin.Tenant{ID: "bench", Plan: "bench"}))
	k, err := c.CreateKey(ctx, "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	out.key = k.Key
	clustertest.Eventually(b, 10*time.Second, "the key on every node", func() bool {
		for _, n := range nodes {
			if _, ok := n.Node.Config().VerifyKey(k.Key); !ok {
				return false
			}
		}
		return true
	})
	return out
}
