package cluster

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/gossip"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// maxVoters is how many members vote in Raft; the rest replicate as
// non-voters. Five voters survive two failures; more only slow commits.
const maxVoters = 5

// manageRaft forms the cluster (bootstrap) and, while this node leads,
// keeps Raft's membership in line with gossip and seeds the default plans.
// It runs until ctx ends.
func (n *Node) manageRaft(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	formed := n.raft.hadState
	for {
		if !formed {
			formed = n.tryBootstrap()
		}
		if n.raft.isLeader() {
			n.reconcileRaft()
			n.seedPlans(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tryBootstrap forms a new cluster once BootstrapExpect members are seen
// (one, for a node that joins nobody):
// the member with the lowest name bootstraps with all of them (up to
// maxVoters) as voters; the others wait for its log. A standalone node
// bootstraps alone. It reports whether there is nothing left to do.
func (n *Node) tryBootstrap() bool {
	self := raft.Server{ID: raft.ServerID(n.name), Address: raft.ServerAddress(n.raft.addr), Suffrage: raft.Voter}
	if n.members == nil {
		n.bootstrap([]raft.Server{self})
		return true
	}
	expect := n.cfg.BootstrapExpect
	if expect == 0 && len(n.cfg.Join) > 0 {
		return true // joins an existing cluster: its leader adds this node
	}
	expect = max(expect, 1) // a node that joins nobody starts a cluster
	var seen []gossip.Member
	for _, m := range n.members.Live() {
		if m.RaftAddr != "" && !m.Leaving {
			seen = append(seen, m)
		}
	}
	if len(seen) < expect {
		return false
	}
	slices.SortFunc(seen, func(a, b gossip.Member) int { return cmp.Compare(a.Name, b.Name) })
	if seen[0].Name != n.name {
		return true
	}
	servers := make([]raft.Server, 0, min(len(seen), maxVoters))
	for _, m := range seen[:min(len(seen), maxVoters)] {
		servers = append(servers, raft.Server{ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
	}
	n.bootstrap(servers)
	return true
}

func (n *Node) bootstrap(servers []raft.Server) {
	if err := n.raft.bootstrap(servers); err != nil {
		n.log.Error("bootstrapping raft", "err", err)
		return
	}
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = string(s.ID)
	}
	n.log.Info("raft cluster bootstrapped", "voters", names)
}

// reconcileRaft, on the leader, adds live members to Raft (as voters while
// there are fewer than maxVoters), fixes a member whose address changed,
// promotes non-voters when a vote is free, and removes members that left
// gracefully. Members that died stay: they may come back with their log.
// Every step is idempotent; the next tick retries what failed.
func (n *Node) reconcileRaft() {
	if n.members == nil {
		return
	}
	f := n.raft.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	inRaft := map[string]raft.Server{}
	voters := 0
	for _, s := range f.Configuration().Servers {
		inRaft[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, m := range n.members.All() {
		s, known := inRaft[m.Name]
		if m.Name == n.name {
			continue
		}
		gone := m.State == "left" || m.Leaving
		switch {
		case gone && known:
			n.raftChange("removing a member that left", m.Name, n.raft.raft.RemoveServer(s.ID, 0, 0))
			if s.Suffrage == raft.Voter {
				voters--
			}
		case gone, m.State != "alive", m.RaftAddr == "":
			// Nothing to add: departed, dead or not a Raft member.
		case known && string(s.Address) != m.RaftAddr:
			// Same name, new address: the old entry goes first.
			n.raftChange("replacing a moved member", m.Name, n.raft.raft.RemoveServer(s.ID, 0, 0))
		case !known && voters < maxVoters, known && s.Suffrage != raft.Voter && voters < maxVoters:
			if n.raftChange("adding a voter", m.Name, n.raft.raft.AddVoter(raft.ServerID(m.Name), raft.ServerAddress(m.RaftAddr), 0, 0)) {
				voters++
			}
		case !known:
			n.raftChange("adding a non-voter", m.Name, n.raft.raft.AddNonvoter(raft.ServerID(m.Name), raft.ServerAddress(m.RaftAddr), 0, 0))
		}
	}
}

func (n *Node) raftChange(what, member string, f raft.IndexFuture) bool {
	if err := f.Error(); err != nil {
		n.log.Warn(what, "member", member, "err", err)
		return false
	}
	n.log.Info(what, "member", member)
	return true
}

type RaftStatus struct {
	Node      string   `json:"node"`
	State     string   `json:"state"`
	Leader    string   `json:"leader"`
	Applied   uint64   `json:"applied_index"`
	Voters    []string `json:"voters"`
	Nonvoters []string `json:"nonvoters"`
	Plans     int      `json:"plans"`
	Tenants   int      `json:"tenants"`
	Keys      int      `json:"keys"`
	Providers int      `json:"providers"`
}

// raftStatus is this node's view of Raft and of the configuration, read
// locally.
func (n *Node) raftStatus() RaftStatus {
	v := n.Config()
	out := RaftStatus{Node: n.name, State: "disabled", Voters: []string{}, Nonvoters: []string{}, Applied: n.fsm.Applied(),
		Plans: len(v.Plans()), Tenants: len(v.Tenants()), Keys: len(v.Keys()), Providers: len(v.Providers())}
	if n.raft == nil {
		return out
	}
	out.State = strings.ToLower(n.raft.raft.State().String())
	out.Leader = n.raft.leader()
	if f := n.raft.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				out.Voters = append(out.Voters, string(s.ID))
			} else {
				out.Nonvoters = append(out.Nonvoters, string(s.ID))
			}
		}
	}
	slices.Sort(out.Voters)
	slices.Sort(out.Nonvoters)
	return out
}

// depart asks the Raft leader to remove this node, which is leaving. If it
// cannot, the leader still removes it once gossip says it left.
func (n *Node) depart(ctx context.Context) {
	leader := n.raft.leader()
	if leader == "" || leader == n.name {
		return
	}
	client, err := n.peers.Client(leader)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		_, err = client.Depart(ctx, &peerv1.DepartRequest{From: n.name})
	}
	if err != nil {
		n.log.Warn("asking the raft leader to remove this node", "leader", leader, "err", err)
	}
}

// seedPlans writes the default plans once in the life of a cluster (the
// FSM remembers it has), so a plan deleted later stays deleted.
func (n *Node) seedPlans(ctx context.Context) {
	if n.fsm.View().Seeded() {
		return
	}
	cmd := &configv1.Command{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: config.DefaultPlans()}}}
	if _, err := n.apply(ctx, cmd); err != nil {
		n.log.Warn("seeding the default plans", "err", err)
	}
}
