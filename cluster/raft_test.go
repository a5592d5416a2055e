package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/cluster/ring"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// newRaftCluster starts n nodes that form one Raft cluster in memory, and
// waits until every node has the default plans. tweaks change every
// node's configuration further.
func newRaftCluster(t *testing.T, n int, tweaks ...func(*Config)) *testCluster {
	t.Helper()
	c := startTestCluster(t, n, func(cfg *Config) {
		cfg.RaftListen, cfg.InMemory = "127.0.0.1:0", true
		for _, tweak := range tweaks {
			tweak(cfg)
		}
	})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Plan("platinum"); return ok })
	return c
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

// follower returns a running node that does not lead Raft.
func (c *testCluster) follower() *Server {
	c.t.Helper()
	var out *Server
	clustertest.Eventually(c.t, 10*time.Second, "a leader", func() bool {
		leader := false
		for _, s := range c.running() {
			if s.Node.raft.isLeader() {
				leader = true
			} else {
				out = s
			}
		}
		return leader && out != nil
	})
	return out
}

// putTenant creates a tenant through s's admin operations.
func putTenant(t *testing.T, s *Server, tenant *configv1.Tenant) {
	t.Helper()
	if _, err := s.Node.Admin().PutTenant(t.Context(), tenant, PutMode{Create: true}); err != nil {
		t.Fatalf("creating tenant %s: %v", tenant.GetId(), err)
	}
}

// planCheck asks s to admit one request and tokens tokens against the
// tenant's plan.
func planCheck(t *testing.T, s *Server, tenant string, tokens int64) *quota.CheckResponse {
	t.Helper()
	resp, err := s.Node.Check(t.Context(), &quota.CheckRequest{Tenant: tenant, Plan: true, Hits: 1, Tokens: tokens})
	if err != nil {
		t.Fatalf("plan check of %s: %v", tenant, err)
	}
	return resp
}

func TestConfigWrittenOnAFollowerReachesEveryNode(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	f := c.follower()
	putTenant(t, f, &configv1.Tenant{Id: "acme", Name: "Acme", Plan: "gold", Overrides: &configv1.Overrides{RequestsPerMinute: ptr(int64(5))}})
	key, secret, err := f.Node.Admin().CreateKey(t.Context(), "acme", "ci")
	if err != nil || !strings.HasPrefix(secret, "tg_") || len(secret) < 3+43 || len(key.GetSha256()) != 0 {
		t.Fatalf("create key: %v %q %v", key, secret, err)
	}
	c.waitConfig(func(v *config.View) bool { _, ok := v.VerifyKey(secret); return ok })
	for _, s := range c.running() {
		got, err := s.Node.Admin().Tenant("acme")
		if err != nil || got.GetPlan() != "gold" || got.GetOverrides().GetRequestsPerMinute() != 5 {
			t.Fatalf("%s: tenant %v %v", s.Node.Name(), got, err)
		}
	}
	// The plan with its override applies whichever node is called.
	admitted := 0
	for i := range 8 {
		if planCheck(t, c.running()[i%3], "acme", 10).Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d of 8 against an override of 5 per minute", admitted)
	}
	// Revoked keys stop verifying everywhere.
	if _, err := c.running()[2].Node.Admin().RevokeKey(t.Context(), key.GetId()); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	c.waitConfig(func(v *config.View) bool { _, ok := v.VerifyKey(secret); return !ok })
}

func TestMonthlyBudgetCountsCommittedAndUnflushedUsage(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	s := c.follower()
	putTenant(t, s, &configv1.Tenant{Id: "acme", Plan: "gold", Overrides: &configv1.Overrides{TokensPerMonth: ptr(int64(1000))}})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	check := func(i int, tokens int64) bool { return planCheck(t, c.running()[i%3], "acme", tokens).Allowed }
	if !check(0, 600) {
		t.Fatal("600 against a budget of 1000 was denied")
	}
	// 600 more does not fit in the 400 left: nothing helps before the
	// budget renews, at the start of the next UTC month.
	denied := planCheck(t, c.running()[1], "acme", 600)
	untilJune := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Sub(c.clock.Now())
	if month := denied.Limits[slices.IndexFunc(denied.Limits, func(l quota.LimitStatus) bool { return l.Name == quota.LimitTokensPerMonth })]; denied.Allowed || month.Allowed || month.RetryAfter != untilJune {
		t.Fatalf("600 more against 400 left: allowed %v, month %+v, want denied with retry after %s", denied.Allowed, month, untilJune)
	}
	// Once flushed, the ledger holds the 600 on every node, and the
	// budget still holds: what was unflushed is now committed, once.
	c.waitConfig(func(*config.View) bool { return true })
	clustertest.Eventually(t, 10*time.Second, "the usage to be committed on every node", func() bool {
		for _, n := range c.running() {
			if n.Node.fsm.MonthUsage("acme", "2026-05").GetTokens() != 600 {
				return false
			}
		}
		return true
	})
	owner := c.server(s.Node.Owner("acme")).Node
	clustertest.Eventually(t, 10*time.Second, "the flushed tokens to leave the month entry", func() bool {
		owner.usage.mu.Lock()
		defer owner.usage.mu.Unlock()
		return len(owner.usage.refunds) == 0 && owner.usage.inflight == nil
	})
	if got := testutil.ToFloat64(owner.raftMetrics.flushes.WithLabelValues("ok")); got < 1 {
		t.Fatalf("tollgate_usage_flushes_total{result=ok} = %v on the owner", got)
	}
	if check(2, 401) || !check(0, 400) || check(1, 1) {
		t.Fatal("after the flush: 401 must be denied, 400 admitted, then nothing more")
	}
	clustertest.Eventually(t, 10*time.Second, "the usage report to show both admitted checks", func() bool {
		rep, err := s.Node.Admin().Usage("acme", "2026-05")
		// Plan checks name no model: they are in the total and in checks,
		// in no model's or day's line.
		return err == nil && rep.GetTotal().GetRequests() == 2 && rep.GetTotal().GetTokens() == 1000 &&
			rep.GetChecks().GetRequests() == 2 && rep.GetChecks().GetTokens() == 1000 && len(rep.GetDays()) == 0 && len(rep.GetModels()) == 0
	})
}

func TestRaftMembershipFollowsGossip(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	members := func() (voters, nonvoters string) {
		for _, s := range c.running() {
			if s.Node.raft.isLeader() {
				st := s.Node.raftStatus()
				return strings.Join(st.Voters, ","), strings.Join(st.Nonvoters, ",")
			}
		}
		return "", ""
	}
	// Three more join: five vote, the sixth replicates without a vote.
	for _, name := range []string{"node-4", "node-5", "node-6"} {
		c.add(name)
	}
	c.waitRing(6)
	clustertest.Eventually(t, 15*time.Second, "5 voters and 1 non-voter", func() bool {
		v, nv := members()
		return strings.Count(v, ",") == 4 && nv != "" && !strings.Contains(nv, ",")
	})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Plan("gold"); return ok })
	// A voter leaves gracefully: it is removed, and the non-voter gets its
	// vote.
	_, nonvoter := members()
	leaver := "node-2"
	if nonvoter == leaver {
		leaver = "node-3"
	}
	c.leave(leaver)
	clustertest.Eventually(t, 15*time.Second, leaver+" removed and "+nonvoter+" promoted", func() bool {
		v, nv := members()
		return strings.Count(v, ",") == 4 && nv == "" && !strings.Contains(v, leaver) && strings.Contains(v, nonvoter)
	})
}

// A leaving member asks the leader to remove it from Raft, so that its
// removal does not hang on gossip telling its leave from a crash (under
// load a leader may see a graceful leave as a death, and keep the vote).
func TestDepartRemovesAMemberFromRaft(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	var leader, follower *Node
	clustertest.Eventually(t, 10*time.Second, "a leader and 3 voters", func() bool {
		for _, s := range c.running() {
			if s.Node.raft.isLeader() && len(s.Node.raftStatus().Voters) == 3 {
				leader = s.Node
			}
		}
		return leader != nil
	})
	for _, s := range c.running() {
		if s.Node != leader {
			follower = s.Node
		}
	}
	if _, err := follower.PeerService().Depart(t.Context(), &peerv1.DepartRequest{From: leader.Name()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Depart on a follower: %v, want FailedPrecondition", err)
	}
	if _, err := leader.PeerService().Depart(t.Context(), &peerv1.DepartRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Depart without a name: %v, want InvalidArgument", err)
	}
	for range 2 { // removing one that is not there is no error
		if _, err := leader.PeerService().Depart(t.Context(), &peerv1.DepartRequest{From: follower.Name()}); err != nil {
			t.Fatal(err)
		}
	}
	if v := leader.raftStatus().Voters; len(v) != 2 || slices.Contains(v, follower.Name()) {
		t.Fatalf("voters after %s departed: %v", follower.Name(), v)
	}
}

func TestHandOffFlushesUsageBeforeTheStateMoves(t *testing.T) {
	t.Parallel()
	// No periodic flush during the test: only the hand-off can commit.
	c := newRaftCluster(t, 3, func(cfg *Config) { cfg.UsageFlushInterval = time.Hour })
	putTenant(t, c.running()[0], &configv1.Tenant{Id: "base", Plan: "gold"})
	ring4 := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, nil)
	tenant := tenantOwnedBy(t, ring4, "node-4", "moving")
	putTenant(t, c.running()[0], &configv1.Tenant{Id: tenant, Plan: "gold", Overrides: &configv1.Overrides{TokensPerMonth: ptr(int64(1000))}})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant(tenant); return ok })
	check := func(tokens int64) bool { return planCheck(t, c.running()[0], tenant, tokens).Allowed }
	if !check(600) {
		t.Fatal("600 of a budget of 1000 denied")
	}
	c.add("node-4")
	c.waitRing(4)
	clustertest.Eventually(t, 10*time.Second, "the usage committed by the hand-off", func() bool {
		return c.server("node-4").Node.fsm.MonthUsage(tenant, "2026-05").GetTokens() == 600
	})
	// The state moved without the flushed tokens: they count once.
	if check(401) || !check(400) {
		t.Fatal("after the hand-off: want 401 denied and 400 admitted (600 counted once)")
	}
}

func TestAMemberBackOnANewAddressIsReplacedInRaft(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 3)
	leaderOf := func() *Server {
		for _, s := range c.running() {
			if s.Node.raft.isLeader() {
				return s
			}
		}
		return nil
	}
	victim := c.follower().Node.Name()
	c.kill(victim)
	// Gossip lets the name be taken on a new address only once the old
	// incarnation has been dead for gossip.DeadNodeReclaimTime.
	c.waitRing(2)
	dead := time.Now()
	clustertest.Eventually(t, 2*gossip.DeadNodeReclaimTime, "gossip to let the name be reclaimed", func() bool {
		return time.Since(dead) > gossip.DeadNodeReclaimTime+500*time.Millisecond
	})
	c.add(victim) // same name, new ports, empty in-memory log
	c.waitRing(3)
	clustertest.Eventually(t, 15*time.Second, victim+" a voter at its new address", func() bool {
		l := leaderOf()
		if l == nil {
			return false
		}
		f := l.Node.raft.raft.GetConfiguration()
		if f.Error() != nil || len(f.Configuration().Servers) != 3 {
			return false
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == victim {
				return string(s.Address) == c.server(victim).Node.raft.addr && s.Suffrage == raft.Voter
			}
		}
		return false
	})
	// It has the configuration again, from the others' log.
	clustertest.Eventually(t, 10*time.Second, victim+" to have the default plans", func() bool {
		_, ok := c.server(victim).Node.Config().Plan("gold")
		return ok
	})
}

// A command the FSM does not know would panic on every replica that reads
// it from the log: the leader refuses it at the door.
func TestAPeerWriteWithoutAKnownOperationIsRefused(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 1)
	svc := c.running()[0].Node.PeerService()
	for _, cmd := range []*configv1.Command{{}, {Create: true}} {
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Apply(t.Context(), &peerv1.ApplyRequest{Command: data}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("command %v: %v, want InvalidArgument", cmd, err)
		}
	}
	putTenant(t, c.running()[0], &configv1.Tenant{Id: "acme", Plan: "gold"})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
}
