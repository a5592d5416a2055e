package cluster

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/quota"
)

// BenchmarkForwarding drives 64 concurrent callers spread over 3 in-process
// nodes, each checking tenants that another node owns, so that every check
// is forwarded. It compares batched forwarding with one call per check;
// compare the two with go test -bench Forwarding -count 5 | benchstat.
// "lone" is a single caller: the time one forwarded check takes;
// "batched-mtls" is "batched" over mutual TLS, the cost of TLS on the
// peer plane.
func BenchmarkForwarding(b *testing.B) {
	for _, mode := range []struct {
		name string
		cfg  peer.ForwardConfig
		lone bool // one caller: the latency of a forwarded check
		tls  bool
	}{
		{"batched", peer.ForwardConfig{}, false, false},
		{"unary", peer.ForwardConfig{BatchMax: 1, BatchWindow: -1}, false, false},
		{"lone", peer.ForwardConfig{}, true, false},
		{"batched-mtls", peer.ForwardConfig{}, false, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var tweak func(*Config)
			if mode.tls {
				dir := b.TempDir()
				if err := peer.WriteCerts(dir, []string{"node-1", "node-2", "node-3"}, time.Hour); err != nil {
					b.Fatal(err)
				}
				tweak = func(cfg *Config) {
					t, err := peer.LoadTLS(peer.Files(dir, cfg.NodeName))
					if err != nil {
						b.Fatal(err)
					}
					cfg.TLS = t
				}
			}
			c := startTestCluster(b, 3, tweak, mode.cfg)
			nodes := c.running()
			ring := nodes[0].Node.currentRing()
			// remote[i] holds tenants that nodes[i] does not own.
			remote := make([][]quota.CheckRequest, len(nodes))
			for i := 0; len(remote[0]) < 512 || len(remote[1]) < 512 || len(remote[2]) < 512; i++ {
				tenant := fmt.Sprintf("bench-%d", i)
				for j, s := range nodes {
					if ring.Owner(tenant) != s.Node.Name() {
						remote[j] = append(remote[j], dayLimit(tenant, 1<<40))
					}
				}
			}
			b.ReportAllocs()
			if mode.lone {
				for i := 0; b.Loop(); i++ {
					if _, err := nodes[0].Node.Check(b.Context(), &remote[0][i%len(remote[0])]); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			var caller atomic.Int64
			b.SetParallelism(32) // 64 callers on this machine's 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := int(caller.Add(1))
				node, reqs := nodes[id%len(nodes)].Node, remote[id%len(nodes)]
				for i := id; pb.Next(); i++ {
					if _, err := node.Check(b.Context(), &reqs[i%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			var forwarded, batches float64
			for _, s := range nodes {
				st := s.Node.forwardingStats()
				forwarded += st.Forwarded
				batches += float64(st.Batches)
			}
			if batches > 0 {
				b.ReportMetric(forwarded/batches, "checks/batch")
			}
		})
	}
}
