package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/cluster/ring"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/api/admin"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

const testAdminToken = "test-admin-token"

// newRaftCluster starts n nodes that form one Raft cluster in memory, and
// waits until every node has the default plans. tweaks change every
// node's configuration further.
func newRaftCluster(t *testing.T, n int, tweaks ...func(*Config)) *testCluster {
	t.Helper()
	c := startTestCluster(t, n, func(cfg *Config) {
		cfg.RaftListen, cfg.InMemory, cfg.Admin = "127.0.0.1:0", true, AdminAuth{Token: testAdminToken}
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
	waitFor(c.t, 10*time.Second, "the configuration on every node", func() bool {
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
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
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

// call sends an admin or API request to s and decodes the JSON answer.
func call(t *testing.T, s *Server, method, path, body string, out any) int {
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

func TestConfigWrittenOnAFollowerReachesEveryNode(t *testing.T) {
	c := newRaftCluster(t, 3)
	f := c.follower()
	var tenant admin.Tenant
	if code := call(t, f, "POST", "/admin/v1/tenants", `{"id":"acme","name":"Acme","plan":"gold","overrides":{"requests_per_minute":5}}`, &tenant); code != 201 {
		t.Fatalf("create tenant: %d %+v", code, tenant)
	}
	var key admin.Key
	if code := call(t, f, "POST", "/admin/v1/tenants/acme/keys", `{"name":"ci"}`, &key); code != 201 || !strings.HasPrefix(key.Key, "tg_") || len(key.Key) < 3+43 {
		t.Fatalf("create key: %d %+v", code, key)
	}
	c.waitConfig(func(v *config.View) bool { _, ok := v.VerifyKey(key.Key); return ok })
	for _, s := range c.running() {
		var got admin.Tenant
		if code := call(t, s, "GET", "/admin/v1/tenants/acme", "", &got); code != 200 || got.Plan != "gold" || *got.Overrides.RequestsPerMinute != 5 {
			t.Fatalf("%s: tenant %d %+v", s.Node.Name(), code, got)
		}
	}
	// The plan with its override applies whichever node is called.
	admitted := 0
	for i := range 8 {
		var resp checkResponseJSON
		if code := call(t, c.running()[i%3], "POST", "/v1/check", `{"tenant":"acme","requests":1,"tokens":10}`, &resp); code != 200 {
			t.Fatalf("plan check: %d", code)
		}
		if resp.Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d of 8 against an override of 5 per minute", admitted)
	}
	// Revoked keys stop verifying everywhere.
	if code := call(t, c.running()[2], "DELETE", "/admin/v1/keys/"+key.ID, "", nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	c.waitConfig(func(v *config.View) bool { _, ok := v.VerifyKey(key.Key); return !ok })
}

func TestAdminAPIRefusesBadInput(t *testing.T) {
	c := newRaftCluster(t, 1)
	s := c.running()[0]
	for _, tc := range []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"POST", "/admin/v1/tenants", `{"id":"acme","plan":"diamond"}`, 400, "plan"},
		{"POST", "/admin/v1/tenants", `{"id":"","plan":"gold"}`, 400, "id"},
		{"POST", "/admin/v1/tenants", `{"id":"acme","plan":"gold","status":"sleeping"}`, 400, "status"},
		{"POST", "/admin/v1/tenants", `{"id":"acme","plan":"gold","overrides":{"requests_per_minute":-1}}`, 400, "overrides.requests_per_minute"},
		{"POST", "/admin/v1/plans", `{"name":"x","failure_policy":"maybe"}`, 400, "failure_policy"},
		{"POST", "/admin/v1/plans", `{"name":"gold"}`, 409, ""},
		{"POST", "/admin/v1/providers", `{"name":"p","base_url":"ftp://x","models":["m"]}`, 400, "base_url"},
		{"POST", "/admin/v1/providers", `{"name":"p","base_url":"https://x","models":["m"],"api_key_env":"not valid"}`, 400, "api_key_env"},
		{"GET", "/admin/v1/tenants/ghost", "", 404, ""},
		{"POST", "/admin/v1/tenants/ghost/keys", "", 404, ""},
		{"DELETE", "/admin/v1/keys/tg_nothere", "", 404, ""},
		{"GET", "/admin/v1/tenants/ghost/usage?month=2026-13", "", 400, "month"},
		{"POST", "/v1/check", `{"tenant":"ghost","requests":1}`, 404, ""},
		{"POST", "/v1/check", `{"tenant":"t","tokens":5,"limits":[{"name":"a","limit":1,"period":"1s"}]}`, 400, "tokens"},
	} {
		var out errorJSON
		code := call(t, s, tc.method, tc.path, tc.body, &out)
		if code != tc.code || out.Error.Field != tc.field {
			t.Errorf("%s %s %s: %d field %q (%s), want %d field %q", tc.method, tc.path, tc.body, code, out.Error.Field, out.Error.Message, tc.code, tc.field)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+s.APIAddr()+"/admin/v1/plans", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d, want 401", resp.StatusCode)
	}
	if len(c.running()[0].Node.Config().Tenants()) != 0 {
		t.Fatal("refused writes created a tenant")
	}
}

func TestSuspendedTenantIsRefused(t *testing.T) {
	c := newRaftCluster(t, 1)
	s := c.running()[0]
	call(t, s, "POST", "/admin/v1/tenants", `{"id":"acme","plan":"bronze","status":"suspended"}`, nil)
	var out errorJSON
	if code := call(t, s, "POST", "/v1/check", `{"tenant":"acme","requests":1}`, &out); code != 403 || out.Error.Code != "tenant_suspended" {
		t.Fatalf("suspended tenant: %d %+v", code, out)
	}
}

func TestMonthlyBudgetCountsCommittedAndUnflushedUsage(t *testing.T) {
	c := newRaftCluster(t, 3)
	s := c.follower()
	call(t, s, "POST", "/admin/v1/tenants", `{"id":"acme","plan":"gold","overrides":{"tokens_per_month":1000}}`, nil)
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	check := func(i, tokens int) bool {
		var resp checkResponseJSON
		if code := call(t, c.running()[i%3], "POST", "/v1/check", fmt.Sprintf(`{"tenant":"acme","requests":1,"tokens":%d}`, tokens), &resp); code != 200 {
			t.Fatalf("check: %d", code)
		}
		return resp.Allowed
	}
	if !check(0, 600) || check(1, 600) {
		t.Fatal("600 then 600 against a budget of 1000: want admitted then denied")
	}
	// Once flushed, the ledger holds the 600 on every node, and the
	// budget still holds: what was unflushed is now committed, once.
	c.waitConfig(func(*config.View) bool { return true })
	waitFor(t, 10*time.Second, "the usage to be committed on every node", func() bool {
		for _, n := range c.running() {
			if n.Node.fsm.MonthUsage("acme", "2026-05").GetTokens() != 600 {
				return false
			}
		}
		return true
	})
	owner := c.server(s.Node.Owner("acme")).Node
	waitFor(t, 10*time.Second, "the flushed tokens to leave the month entry", func() bool {
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
	waitFor(t, 10*time.Second, "the usage report to show both admitted checks", func() bool {
		var rep admin.UsageReport
		code := call(t, s, "GET", "/admin/v1/tenants/acme/usage?month=2026-05", "", &rep)
		return code == 200 && rep.Total.Requests == 2 && rep.Total.Tokens == 1000 && len(rep.Days) == 1 && rep.Days[0].Day == "2026-05-01"
	})
}

func TestWritesWithoutQuorumFailFastWhileChecksGoOn(t *testing.T) {
	c := newRaftCluster(t, 3)
	call(t, c.running()[0], "POST", "/admin/v1/tenants", `{"id":"acme","plan":"gold"}`, nil)
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	survivor := c.running()[0]
	for _, s := range c.running()[1:] {
		c.kill(s.Node.Name())
	}
	start := time.Now()
	var out errorJSON
	code := call(t, survivor, "POST", "/admin/v1/tenants", `{"id":"beta","plan":"gold"}`, &out)
	took := time.Since(start)
	if code != 503 || out.Error.Code != "no_quorum" {
		t.Fatalf("write without quorum: %d %+v", code, out)
	}
	if took > 3*time.Second {
		t.Fatalf("write without quorum took %s to fail", took)
	}
	t.Logf("write without quorum refused after %s", took)
	var resp checkResponseJSON
	if code := call(t, survivor, "POST", "/v1/check", `{"tenant":"acme","requests":1,"tokens":5}`, &resp); code != 200 || !resp.Allowed {
		t.Fatalf("plan check without quorum: %d %+v", code, resp)
	}
	if code := call(t, survivor, "GET", "/admin/v1/tenants/acme", "", nil); code != 200 {
		t.Fatalf("read without quorum: %d", code)
	}
}

func TestRaftMembershipFollowsGossip(t *testing.T) {
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
	waitFor(t, 15*time.Second, "5 voters and 1 non-voter", func() bool {
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
	waitFor(t, 15*time.Second, leaver+" removed and "+nonvoter+" promoted", func() bool {
		v, nv := members()
		return strings.Count(v, ",") == 4 && nv == "" && !strings.Contains(v, leaver) && strings.Contains(v, nonvoter)
	})
}

// A leaving member asks the leader to remove it from Raft, so that its
// removal does not hang on gossip telling its leave from a crash (under
// load a leader may see a graceful leave as a death, and keep the vote).
func TestDepartRemovesAMemberFromRaft(t *testing.T) {
	c := newRaftCluster(t, 3)
	var leader, follower *Node
	waitFor(t, 10*time.Second, "a leader and 3 voters", func() bool {
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

func TestAdminOverGRPCNeedsTheToken(t *testing.T) {
	c := newRaftCluster(t, 1)
	conn, err := grpc.NewClient(c.running()[0].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := configv1.NewAdminClient(conn)
	if _, err := admin.ListPlans(t.Context(), &configv1.ListRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+testAdminToken)
	if _, err := admin.PutTenant(ctx, &configv1.PutTenantRequest{Tenant: &configv1.Tenant{Id: "acme", Plan: "nope"}, Create: true}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown plan: %v, want InvalidArgument", err)
	}
	if _, err := admin.PutTenant(ctx, &configv1.PutTenantRequest{Tenant: &configv1.Tenant{Id: "acme", Plan: "silver"}, Create: true}); err != nil {
		t.Fatal(err)
	}
	got, err := admin.GetTenant(ctx, &configv1.GetRequest{Name: "acme"})
	if err != nil || got.GetPlan() != "silver" {
		t.Fatalf("get: %v %v", got, err)
	}
	key, err := admin.CreateKey(ctx, &configv1.CreateKeyRequest{Tenant: "acme"})
	if err != nil || !strings.HasPrefix(key.GetSecret(), "tg_") || len(key.GetKey().GetSha256()) != 0 {
		t.Fatalf("create key: %v %v", key, err)
	}
	if _, ok := c.running()[0].Node.Config().VerifyKey(key.GetSecret()); !ok {
		t.Fatal("the created key does not verify")
	}
	if _, err := admin.GetPlan(ctx, &configv1.GetRequest{Name: "diamond"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown plan: %v, want NotFound", err)
	}
}

func TestHandOffFlushesUsageBeforeTheStateMoves(t *testing.T) {
	// No periodic flush during the test: only the hand-off can commit.
	c := newRaftCluster(t, 3, func(cfg *Config) { cfg.UsageFlushInterval = time.Hour })
	call(t, c.running()[0], "POST", "/admin/v1/tenants", `{"id":"base","plan":"gold"}`, nil)
	ring4 := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, nil)
	tenant := tenantOwnedBy(t, ring4, "node-4", "moving")
	call(t, c.running()[0], "POST", "/admin/v1/tenants", fmt.Sprintf(`{"id":%q,"plan":"gold","overrides":{"tokens_per_month":1000}}`, tenant), nil)
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant(tenant); return ok })
	check := func(tokens int) bool {
		var resp checkResponseJSON
		if code := call(t, c.running()[0], "POST", "/v1/check", fmt.Sprintf(`{"tenant":%q,"tokens":%d}`, tenant, tokens), &resp); code != 200 {
			t.Fatalf("check: %d", code)
		}
		return resp.Allowed
	}
	if !check(600) {
		t.Fatal("600 of a budget of 1000 denied")
	}
	c.add("node-4")
	c.waitRing(4)
	waitFor(t, 10*time.Second, "the usage committed by the hand-off", func() bool {
		return c.server("node-4").Node.fsm.MonthUsage(tenant, "2026-05").GetTokens() == 600
	})
	// The state moved without the flushed tokens: they count once.
	if check(401) || !check(400) {
		t.Fatal("after the hand-off: want 401 denied and 400 admitted (600 counted once)")
	}
}

func TestAdminAPIIsOffWithoutAToken(t *testing.T) {
	c := startTestCluster(t, 1, func(cfg *Config) { cfg.RaftListen, cfg.InMemory = "127.0.0.1:0", true })
	var out errorJSON
	if code := call(t, c.running()[0], "GET", "/admin/v1/plans", "", &out); code != 403 || out.Error.Code != "admin_disabled" {
		t.Fatalf("admin API without a token: %d %+v", code, out)
	}
}

func TestAdminAPIManagesPlansProvidersAndKeys(t *testing.T) {
	c := newRaftCluster(t, 1)
	s := c.running()[0]
	var plan map[string]any
	if code := call(t, s, "PUT", "/admin/v1/plans/team", `{"requests_per_minute":30,"tokens_per_month":5000}`, &plan); code != 200 || plan["name"] != "team" || plan["failure_policy"] != "local" {
		t.Fatalf("put plan: %d %v", code, plan)
	}
	call(t, s, "POST", "/admin/v1/tenants", `{"id":"acme","plan":"team"}`, nil)
	if code := call(t, s, "DELETE", "/admin/v1/plans/team", "", nil); code != 409 {
		t.Fatalf("deleting a plan in use: %d, want 409", code)
	}
	if code := call(t, s, "DELETE", "/admin/v1/tenants/acme", "", nil); code != 200 {
		t.Fatalf("delete tenant: %d", code)
	}
	if code := call(t, s, "DELETE", "/admin/v1/plans/team", "", nil); code != 200 {
		t.Fatalf("delete plan: %d", code)
	}
	if code := call(t, s, "GET", "/admin/v1/plans/team", "", nil); code != 404 {
		t.Fatalf("deleted plan: %d, want 404", code)
	}

	body := `{"name":"up","base_url":"https://llm.example/v1","api_key_env":"UP_KEY","models":["m1"],"prompt_price_per_million":2.5,"completion_price_per_million":10}`
	var prov map[string]any
	if code := call(t, s, "POST", "/admin/v1/providers", body, &prov); code != 201 || prov["prompt_price_per_million"] != 2.5 {
		t.Fatalf("create provider: %d %v", code, prov)
	}
	if p, _ := s.Node.Config().Provider("up"); p.GetPromptPriceMicros() != 2_500_000 || p.GetApiKeyEnv() != "UP_KEY" {
		t.Fatalf("stored provider: %v", p)
	}
	if code := call(t, s, "DELETE", "/admin/v1/providers/up", "", nil); code != 200 {
		t.Fatalf("delete provider: %d", code)
	}

	call(t, s, "POST", "/admin/v1/tenants", `{"id":"beta","plan":"silver"}`, nil)
	var created admin.Key
	call(t, s, "POST", "/admin/v1/keys", `{"tenant":"beta"}`, &created)
	var list struct{ Keys []map[string]any }
	if code := call(t, s, "GET", "/admin/v1/tenants/beta/keys", "", &list); code != 200 || len(list.Keys) != 1 {
		t.Fatalf("list keys: %d %v", code, list)
	}
	k := list.Keys[0]
	if k["id"] != created.ID || !strings.HasPrefix(created.Key, created.ID) || k["key"] != nil || k["sha256"] != nil {
		t.Fatalf("a listed key shows more than its prefix: %v", k)
	}
}

func TestAMemberBackOnANewAddressIsReplacedInRaft(t *testing.T) {
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
	waitFor(t, 2*gossip.DeadNodeReclaimTime, "gossip to let the name be reclaimed", func() bool {
		return time.Since(dead) > gossip.DeadNodeReclaimTime+500*time.Millisecond
	})
	c.add(victim) // same name, new ports, empty in-memory log
	c.waitRing(3)
	waitFor(t, 15*time.Second, victim+" a voter at its new address", func() bool {
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
	waitFor(t, 10*time.Second, victim+" to have the default plans", func() bool {
		_, ok := c.server(victim).Node.Config().Plan("gold")
		return ok
	})
}

// A command the FSM does not know would panic on every replica that reads
// it from the log: the leader refuses it at the door.
func TestAPeerWriteWithoutAKnownOperationIsRefused(t *testing.T) {
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
	call(t, c.running()[0], "POST", "/admin/v1/tenants", `{"id":"acme","plan":"gold"}`, nil)
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
}
