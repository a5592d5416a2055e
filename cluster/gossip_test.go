package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/gossip"
)

// With a gossip key, a process without it, or with another, never becomes
// a member: not in the member list, so neither in the ring nor in Raft.
func TestGossipWithoutTheKeyIsNotLetIn(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	c := startTestCluster(t, 2, func(cfg *Config) {
		cfg.RaftListen, cfg.InMemory = "127.0.0.1:0", true
		cfg.Gossip = gossip.Security{Keys: [][]byte{key}, Label: "tollgate-test"}
	})
	join := []string{c.running()[0].GossipAddr()}
	rogues := map[string]gossip.Security{
		"rogue-nokey":    {Label: "tollgate-test"},
		"rogue-otherkey": {Keys: [][]byte{[]byte("fedcba9876543210fedcba9876543210")}, Label: "tollgate-test"},
		"rogue-nolabel":  {Keys: [][]byte{key}},
	}
	for name, sec := range rogues {
		// With a Raft address of its own, as a real node has: let in, it
		// would become a voter.
		s, err := startNode(t.Context(), Config{NodeName: name, GossipAddr: "127.0.0.1:0", Join: join, Gossip: sec,
			RaftListen: "127.0.0.1:0", InMemory: true, Logger: c.log.With("node", name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Kill)
	}
	// Nothing to wait for: watch a while (gossip probes every 200 ms and
	// the rogues retry their join) that none ever shows up.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, s := range c.running() {
			for _, m := range s.Node.Members() {
				if _, rogue := rogues[m.Name]; rogue {
					t.Fatalf("%s sees %s as a member (%s)", s.Node.Name(), m.Name, m.State)
				}
			}
			if s.Node.RingSize() != 2 {
				t.Fatalf("%s's ring has %d owners", s.Node.Name(), s.Node.RingSize())
			}
		}
	}
	for _, s := range c.running() {
		if v := s.Node.raftStatus().Voters; slices.ContainsFunc(v, func(n string) bool { _, rogue := rogues[n]; return rogue }) {
			t.Fatalf("voters %v", v)
		}
	}
	// And a node with the key and the label joins as ever, and becomes a
	// voter (which the rogues, with Raft addresses as well, did not).
	c.add("node-3")
	c.waitRing(3)
	clustertest.Eventually(t, 10*time.Second, "node-3 to become a voter", func() bool {
		return slices.Contains(c.running()[0].Node.raftStatus().Voters, "node-3")
	})
}
