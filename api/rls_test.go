package api

import (
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/quota"
)

// edgeRules is a domain in envoyproxy/ratelimit's shape, as the admin API
// takes it.
const edgeRules = `{"domain": "edge", "descriptors": [
	{"key": "remote_address", "rate_limit": {"unit": "minute", "requests_per_unit": 5, "name": "per-ip"}},
	{"key": "path", "value": "/api/*", "rate_limit": {"unit": "MINUTE", "requests_per_unit": 3},
	 "descriptors": [{"key": "method", "value": "POST", "rate_limit": {"unit": "second", "requests_per_unit": 2}}]},
	{"key": "database", "value": "users", "shadow_mode": true, "rate_limit": {"unit": "hour", "requests_per_unit": 4}},
	{"key": "plan", "value": "free", "rate_limit": {"unlimited": true}},
	{"key": "client", "descriptors": [{"key": "model", "rate_limit": {"unit": "minute", "requests_per_unit": 10, "unit_multiplier": 5}}]},
	{"key": "blocked", "rate_limit": {"unit": "second", "requests_per_unit": 0}}
]}`

// rlsCluster is three Raft nodes holding edgeRules, and an Envoy client of
// each node's public port.
func rlsCluster(t *testing.T) (*testCluster, []rlsv3.RateLimitServiceClient) {
	t.Helper()
	c := newRaftCluster(t, 3)
	if code := call(t, c.server("node-2"), "PUT", "/admin/v1/rls/edge", edgeRules, nil); code != 200 {
		t.Fatalf("PUT /admin/v1/rls/edge: %d", code)
	}
	c.waitConfig(func(v *config.View) bool { _, ok := v.RLSDomain("edge"); return ok })
	var clients []rlsv3.RateLimitServiceClient
	for _, s := range c.running() {
		clients = append(clients, rlsv3.NewRateLimitServiceClient(dialPublic(t, s)))
	}
	return c, clients
}

func descriptor(kv ...string) *ratelimitv3.RateLimitDescriptor {
	d := &ratelimitv3.RateLimitDescriptor{}
	for i := 0; i < len(kv); i += 2 {
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func ask(t *testing.T, client rlsv3.RateLimitServiceClient, domain string, ds ...*ratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitResponse {
	t.Helper()
	resp, err := client.ShouldRateLimit(t.Context(), &rlsv3.RateLimitRequest{Domain: domain, Descriptors: ds})
	if err != nil {
		t.Fatalf("ShouldRateLimit(%s, %v): %v", domain, ds, err)
	}
	return resp
}

// okCount asks n times, round robin over every node, and counts the OKs.
func okCount(t *testing.T, clients []rlsv3.RateLimitServiceClient, n int, domain string, ds ...*ratelimitv3.RateLimitDescriptor) int {
	t.Helper()
	ok := 0
	for i := range n {
		if ask(t, clients[i%len(clients)], domain, ds...).GetOverallCode() == rlsv3.RateLimitResponse_OK {
			ok++
		}
	}
	return ok
}

func TestRLSAdmitsExactlyTheLimitAcrossNodes(t *testing.T) {
	t.Parallel()
	c, clients := rlsCluster(t)

	// Each value of a key-only rule is counted apart.
	for _, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		if got := okCount(t, clients, 12, "edge", descriptor("remote_address", ip)); got != 5 {
			t.Errorf("remote_address=%s: %d of 12 OK across 3 nodes, want exactly 5", ip, got)
		}
	}
	// A prefix rule, and the rule nested under it for a longer descriptor:
	// each its own counter.
	if got := okCount(t, clients, 9, "edge", descriptor("path", "/api/v1/chat")); got != 3 {
		t.Errorf("path=/api/v1/chat: %d of 9 OK, want 3", got)
	}
	if got := okCount(t, clients, 9, "edge", descriptor("path", "/api/v1/chat", "method", "POST")); got != 2 {
		t.Errorf("path=/api/v1/chat, method=POST: %d of 9 OK, want 2", got)
	}
	// The window is the rule's: a minute later the first IP may again.
	c.clock.Advance(time.Minute)
	if got := okCount(t, clients, 7, "edge", descriptor("remote_address", "10.0.0.1")); got != 5 {
		t.Errorf("remote_address=10.0.0.1 in the next minute: %d of 7 OK, want 5", got)
	}
}

func TestRLSStatusesCarryTheLimitRemainingAndReset(t *testing.T) {
	t.Parallel()
	c, clients := rlsCluster(t)
	c.clock.Advance(15 * time.Second) // 12:00:15: a minute window ends in 45 s

	resp := ask(t, clients[0], "edge", descriptor("remote_address", "10.1.1.1"), descriptor("path", "/static/x"), descriptor("client", "a", "model", "m"))
	if resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || len(resp.GetStatuses()) != 3 {
		t.Fatalf("answer: %v", resp)
	}
	ip := resp.GetStatuses()[0]
	if l := ip.GetCurrentLimit(); l.GetRequestsPerUnit() != 5 || l.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE || l.GetName() != "per-ip" {
		t.Errorf("current_limit %v, want per-ip 5 per MINUTE", l)
	}
	if ip.GetLimitRemaining() != 4 || ip.GetDurationUntilReset().AsDuration() != 45*time.Second {
		t.Errorf("remaining %d, until reset %v; want 4, 45s", ip.GetLimitRemaining(), ip.GetDurationUntilReset().AsDuration())
	}
	if st := resp.GetStatuses()[1]; st.GetCurrentLimit() != nil || st.GetCode() != rlsv3.RateLimitResponse_OK {
		t.Errorf("a descriptor no rule matches: %v, want OK with no limit", st)
	}
	model := resp.GetStatuses()[2].GetCurrentLimit()
	if model.GetUnitMultiplier().GetValue() != 5 || model.GetRequestsPerUnit() != 10 {
		t.Errorf("client > model limit %v, want 10 per 5 minutes", model)
	}
	wantHeaders(t, resp, map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "4", "RateLimit-Reset": "45"})

	// One descriptor over its limit makes the whole answer OVER_LIMIT, and
	// the others still count.
	for range 4 {
		ask(t, clients[1], "edge", descriptor("remote_address", "10.1.1.1"))
	}
	resp = ask(t, clients[2], "edge", descriptor("remote_address", "10.1.1.1"), descriptor("client", "a", "model", "m"))
	codes := []rlsv3.RateLimitResponse_Code{resp.GetStatuses()[0].GetCode(), resp.GetStatuses()[1].GetCode()}
	if resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT || codes[0] != rlsv3.RateLimitResponse_OVER_LIMIT || codes[1] != rlsv3.RateLimitResponse_OK {
		t.Errorf("overall %v, statuses %v; want OVER_LIMIT, [OVER_LIMIT OK]", resp.GetOverallCode(), codes)
	}
	if r := resp.GetStatuses()[1].GetLimitRemaining(); r != 8 {
		t.Errorf("client > model remaining %d after two hits, want 8", r)
	}
	// An answer over the limit says 0 left, and its headers are the
	// refusing descriptor's, though another has less room in general.
	if r := resp.GetStatuses()[0].GetLimitRemaining(); r != 0 {
		t.Errorf("remaining %d over the limit, want 0", r)
	}
	wantHeaders(t, resp, map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "45"})

	// Unlimited: OK with all the room there is, no limit, no headers.
	resp = ask(t, clients[0], "edge", descriptor("plan", "free"))
	if st := resp.GetStatuses()[0]; st.GetLimitRemaining() != math.MaxUint32 || st.GetCurrentLimit() != nil || len(resp.GetResponseHeadersToAdd()) > 0 {
		t.Errorf("unlimited: %v", resp)
	}
	// A rule of 0 refuses everything, and counts nothing.
	if got := okCount(t, clients, 3, "edge", descriptor("blocked", "x")); got != 0 {
		t.Errorf("a rule of 0 per second: %d of 3 OK", got)
	}
}

func wantHeaders(t *testing.T, resp *rlsv3.RateLimitResponse, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, h := range resp.GetResponseHeadersToAdd() {
		got[h.GetKey()] = h.GetValue()
	}
	if !maps.Equal(got, want) {
		t.Errorf("headers %v, want %v", got, want)
	}
}

func TestRLSShadowModeCountsButNeverRefuses(t *testing.T) {
	t.Parallel()
	c, clients := rlsCluster(t)
	if got := okCount(t, clients, 7, "edge", descriptor("database", "users")); got != 7 {
		t.Errorf("shadow rule: %d of 7 OK, want all", got)
	}
	last := ask(t, clients[0], "edge", descriptor("database", "users")).GetStatuses()[0]
	if last.GetLimitRemaining() != 0 || last.GetCurrentLimit().GetRequestsPerUnit() != 4 {
		t.Errorf("shadow status %v, want 0 remaining of 4", last)
	}
	var shadowed float64
	for _, s := range c.running() {
		n, err := testutil.GatherAndCount(s.Node.Registry(), "tollgate_rls_descriptors_total")
		if err != nil || n == 0 {
			t.Fatalf("tollgate_rls_descriptors_total on %s: %d series, %v", s.Node.Name(), n, err)
		}
		shadowed += counterValue(t, s, "tollgate_rls_descriptors_total", "outcome", "shadow_over_limit")
	}
	if shadowed != 4 {
		t.Errorf("shadow_over_limit counted %v times over the nodes, want 4 (8 asks of a limit of 4)", shadowed)
	}
	if got := okCount(t, clients, 20, "edge", descriptor("plan", "free")); got != 20 {
		t.Errorf("unlimited rule: %d of 20 OK", got)
	}
}

func TestRLSHitsAddendAndOverrides(t *testing.T) {
	t.Parallel()
	_, clients := rlsCluster(t)
	req := &rlsv3.RateLimitRequest{Domain: "edge", HitsAddend: 3, Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("remote_address", "10.2.2.2")}}
	resp, err := clients[0].ShouldRateLimit(t.Context(), req)
	if err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || resp.GetStatuses()[0].GetLimitRemaining() != 2 {
		t.Fatalf("3 hits of 5: %v %v, want OK with 2 left", resp, err)
	}
	if resp, _ = clients[1].ShouldRateLimit(t.Context(), req); resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Errorf("3 more hits with 2 left: %v, want OVER_LIMIT", resp.GetOverallCode())
	}
	// A descriptor's own hits_addend wins over the request's; 0 only asks.
	d := descriptor("remote_address", "10.2.2.2")
	d.HitsAddend = wrapperspb.UInt64(0)
	req.Descriptors = []*ratelimitv3.RateLimitDescriptor{d}
	if resp, _ = clients[2].ShouldRateLimit(t.Context(), req); resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || resp.GetStatuses()[0].GetLimitRemaining() != 2 {
		t.Errorf("hits_addend 0: %v, want OK with 2 left", resp)
	}
	// A descriptor's own limit applies in place of the rules (a descriptor
	// no rule names here), but, as in envoyproxy/ratelimit, not in a
	// domain without rules.
	o := descriptor("user", "u1")
	o.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 2, Unit: typev3.RateLimitUnit_HOUR}
	if got := okCount(t, clients, 5, "edge", o); got != 2 {
		t.Errorf("override of 2 per hour: %d of 5 OK, want 2", got)
	}
	if got := okCount(t, clients, 5, "no-such-domain", o); got != 5 {
		t.Errorf("override in a domain without rules: %d of 5 OK, want all", got)
	}
}

func TestRLSUnknownDomainIsOKUnlessConfiguredOtherwise(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 2, func(cfg *ServerConfig) {
		cfg.RLS.UnknownDomainOverLimit = cfg.Node.NodeName == "node-2"
	})
	d := descriptor("remote_address", "10.0.0.1")
	if got := ask(t, rlsv3.NewRateLimitServiceClient(dialPublic(t, c.server("node-1"))), "nowhere", d); got.GetOverallCode() != rlsv3.RateLimitResponse_OK {
		t.Errorf("unknown domain by default: %v, want OK", got.GetOverallCode())
	}
	if got := ask(t, rlsv3.NewRateLimitServiceClient(dialPublic(t, c.server("node-2"))), "nowhere", d); got.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Errorf("unknown domain with --rls-unknown-domain=over_limit: %v, want OVER_LIMIT", got.GetOverallCode())
	}
}

func TestRLSBadRequestsGetAClearError(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 1)
	client := rlsv3.NewRateLimitServiceClient(dialPublic(t, c.server("node-1")))
	negative := descriptor("a", "b")
	negative.IsNegativeHits = true
	badUnit := descriptor("a", "b")
	badUnit.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1}
	wraps := descriptor("a", "b")
	wraps.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(585)}
	for _, tc := range []struct {
		req  *rlsv3.RateLimitRequest
		want string
	}{
		{&rlsv3.RateLimitRequest{Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("a", "b")}}, "domain: is required"},
		{&rlsv3.RateLimitRequest{Domain: "edge"}, "descriptors: at least one descriptor is required"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{{}}}, "descriptors[0].entries: at least one entry is required"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("a", "b"), descriptor("", "x")}}, "descriptors[1].entries[0].key: is required"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("a", "")}}, "descriptors[0].entries[0].value: is required"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("a", "x\ny")}}, "control characters"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{negative}}, "is_negative_hits: is not supported"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{badUnit}}, "descriptors[0].limit.unit: UNKNOWN is not a unit of time"},
		{&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{wraps}}, "descriptors[0].limit.unit_multiplier: the window is longer than 366 days"},
	} {
		_, err := client.ShouldRateLimit(t.Context(), tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("%v: %v, want InvalidArgument saying %q", tc.req, err, tc.want)
		}
	}
}

// The check token guards Envoy's service as it guards the check API:
// Envoy sends it as the grpc_service's initial_metadata.
func TestRLSNeedsTheCheckToken(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 1, func(cfg *ServerConfig) { cfg.Auth.CheckToken = "check-secret" })
	client := rlsv3.NewRateLimitServiceClient(dialPublic(t, c.server("node-1")))
	_, err := client.ShouldRateLimit(t.Context(), &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("a", "b")}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
}

func TestRLSTenantsNeverCollide(t *testing.T) {
	t.Parallel()
	entries := func(kv ...string) []*ratelimitv3.RateLimitDescriptor_Entry { return descriptor(kv...).GetEntries() }
	seen := map[string]int{}
	for i, d := range []struct {
		domain  string
		entries []*ratelimitv3.RateLimitDescriptor_Entry
	}{
		{"edge", entries("a", "b", "c", "d")},
		{"edge", entries("a", "b/c=d")},
		{"edge/a=b", entries("c", "d")}, // a domain Envoy may send with an override
		{"edge", entries("a=b", "c")},
		{"edge", entries("a", "%2f")},
		{"edge", entries("a", "/")},
		{"edge", entries("k", strings.Repeat("x", 250))},
		{"edge", entries("k", strings.Repeat("x", 249)+"y")},
		{strings.Repeat("/", 128), entries("k", "v")}, // escapes to 384 bytes
		{strings.Repeat("/", 127) + "=", entries("k", "v")},
	} {
		tenant := rlsTenant(d.domain, d.entries)
		if j, dup := seen[tenant]; dup {
			t.Errorf("descriptors %d and %d share the counter %q", j, i, tenant)
		}
		if err := quota.ValidateTenant("", tenant); err != nil {
			t.Errorf("descriptor %d: the counter %q is no tenant: %v", i, tenant, err)
		}
		seen[tenant] = i
	}
}

// counterValue reads one labelled counter of s's registry (0 if absent).
func counterValue(t *testing.T, s *Server, name, label, value string) float64 {
	t.Helper()
	families, err := s.Node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestRLSRulesWithAnErrorAreRefusedByName(t *testing.T) {
	t.Parallel()
	c := newRaftCluster(t, 1)
	s := c.server("node-1")
	var out struct {
		Error struct{ Code, Message, Field string }
	}
	bad := `{"domain": "edge", "descriptors": [{"key": "k", "rate_limit": {"unit": "fortnight", "requests_per_unit": 1}}]}`
	if code := call(t, s, "PUT", "/admin/v1/rls/edge", bad, &out); code != 400 || out.Error.Field != "descriptors[0].rate_limit.unit" {
		t.Errorf("a bad unit: %d %+v, want 400 naming descriptors[0].rate_limit.unit", code, out.Error)
	}
	if code := call(t, s, "PUT", "/admin/v1/rls/other", `{"domain": "edge", "descriptors": []}`, &out); code != 400 || out.Error.Field != "domain" {
		t.Errorf("a body naming another domain: %d %+v", code, out.Error)
	}
	if code := call(t, s, "POST", "/admin/v1/rls", edgeRules, nil); code != 201 {
		t.Fatalf("POST: %d", code)
	}
	if code := call(t, s, "POST", "/admin/v1/rls", edgeRules, nil); code != 409 {
		t.Errorf("POST of a domain that exists: %d, want 409", code)
	}
	var got struct{ Domains []struct{ Domain string } }
	if call(t, s, "GET", "/admin/v1/rls", "", &got); len(got.Domains) != 1 || got.Domains[0].Domain != "edge" {
		t.Errorf("list: %+v", got)
	}
	// Envoy Gateway's domains have slashes: escaped in the path.
	if code := call(t, s, "PUT", "/admin/v1/rls/default%2Feg%2Fhttp", `{"descriptors": []}`, nil); code != 200 {
		t.Errorf("PUT of a domain with slashes: %d", code)
	}
	if _, ok := s.Node.Config().RLSDomain("default/eg/http"); !ok {
		t.Error("the domain with slashes is not there")
	}
	if code := call(t, s, "DELETE", "/admin/v1/rls/edge", "", nil); code != 200 {
		t.Errorf("DELETE: %d", code)
	}
	if code := call(t, s, "GET", "/admin/v1/rls/edge", "", nil); code != 404 {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
}
