package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/config"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

func TestAdminAPIRefusesBadInput(t *testing.T) {
	t.Parallel()
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

func TestAdminAPIIsOffWithoutAToken(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 1, func(cfg *ServerConfig) { cfg.Node.RaftListen, cfg.Node.InMemory = "127.0.0.1:0", true })
	var out errorJSON
	if code := call(t, c.running()[0], "GET", "/admin/v1/plans", "", &out); code != 403 || out.Error.Code != "admin_disabled" {
		t.Fatalf("admin API without a token: %d %+v", code, out)
	}
}

func TestAdminAPIManagesPlansProvidersAndKeys(t *testing.T) {
	t.Parallel()
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

func TestAdminOverGRPCNeedsTheToken(t *testing.T) {
	t.Parallel()
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

func TestSuspendedTenantIsRefused(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 1)
	s := c.running()[0]
	call(t, s, "POST", "/admin/v1/tenants", `{"id":"acme","plan":"bronze","status":"suspended"}`, nil)
	var out errorJSON
	if code := call(t, s, "POST", "/v1/check", `{"tenant":"acme","requests":1}`, &out); code != 403 || out.Error.Code != "tenant_suspended" {
		t.Fatalf("suspended tenant: %d %+v", code, out)
	}
}

func TestWritesWithoutQuorumFailFastWhileChecksGoOn(t *testing.T) {
	t.Parallel()
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

// A provider the node's gateway would not call is refused when written:
// a key variable outside the prefix, a link-local (metadata) base_url.
func TestAdminRefusesProvidersTheGatewayWouldNotCall(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 1, func(cfg *ServerConfig) {
		cfg.Node.RaftListen, cfg.Node.InMemory = "127.0.0.1:0", true
		cfg.Auth.Admin = TokenAuth{Token: testAdminToken}
		cfg.Node.Upstreams = cluster.UpstreamPolicy{KeyEnvPrefix: "TOLLGATE_PROVIDER_"}
	})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Plan("platinum"); return ok })
	s := c.running()[0]
	for _, tc := range []struct{ body, field string }{
		{`{"name":"p","base_url":"https://x.example","models":["m"],"api_key_env":"AWS_SECRET_ACCESS_KEY"}`, "api_key_env"},
		{`{"name":"p","base_url":"http://169.254.169.254/latest","models":["m"]}`, "base_url"},
		{`{"name":"p","base_url":"http://[fe80::1]:8080/v1","models":["m"]}`, "base_url"},
	} {
		var out errorJSON
		if code := call(t, s, "POST", "/admin/v1/providers", tc.body, &out); code != 400 || out.Error.Field != tc.field {
			t.Errorf("%s: %d %+v, want 400 on %s", tc.body, code, out, tc.field)
		}
	}
	body := `{"name":"p","base_url":"http://127.0.0.1:8070/v1","models":["m"],"api_key_env":"TOLLGATE_PROVIDER_P"}`
	if code := call(t, s, "POST", "/admin/v1/providers", body, nil); code != 201 {
		t.Fatalf("a provider within the policy: %d", code)
	}
}
