package api

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// FuzzDecodeCheck feeds arbitrary bodies to the /v1/check decoder: it must
// never panic, must reject with a field error or accept, and whatever it
// accepts must be valid for the store. A request without limits is a plan
// check, which this unconfigured node answers with an unknown tenant.
func FuzzDecodeCheck(f *testing.F) {
	for _, seed := range []string{
		tenLimit,
		`{"tenant":"t","limits":[{"name":"l","algorithm":"sliding_window","limit":5,"period":60}]}`,
		`{"tenant":"t","hits":0,"limits":[{"name":"m","algorithm":"calendar_month","limit":1000000}]}`,
		`{"tenant":"t","limits":[{"name":"c","algorithm":"concurrency","limit":2,"period":"30s"}]}`,
		`{"tenant":"","limits":null}`,
		`{"tenant":"t","limits":[{"name":"l","limit":1e400,"period":"1s"}]}`,
		`{"tenant":"t","limits":[{"name":"l","limit":1,"period":-1e300}]}`,
		`{"tenant":"0"}`,
		`nul`, `{}`, `[]`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	n := cluster.NewNode(cluster.Config{NodeName: "fuzz"})
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeCheck(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, quota.ErrInvalidArgument) {
				t.Fatalf("decoder error is not a field error: %T %v", err, err)
			}
			return
		}
		if err := req.Validate(""); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		resp, err := n.Check(t.Context(), req)
		if len(req.Limits) == 0 && errors.Is(err, quota.ErrUnknownTenant) {
			return // a plan check, and this node has no tenants configured
		}
		if err != nil {
			t.Fatalf("node refused an accepted request: %v", err)
		}
		for _, l := range resp.Limits {
			if l.Remaining < 0 || l.ResetAfter < 0 || l.RetryAfter < 0 {
				t.Fatalf("out-of-range answer %+v for %q", l, body)
			}
		}
	})
}

// FuzzAdminJSON feeds arbitrary bodies to the admin API's decoders of
// plans, tenants and providers: none panics, and each refuses with a field
// error or returns a record (the admin operations then validate it).
func FuzzAdminJSON(f *testing.F) {
	for _, seed := range []string{
		`{"name":"team","requests_per_minute":30,"tokens_per_month":5000,"failure_policy":"open"}`,
		`{"id":"acme","plan":"gold","status":"suspended","overrides":{"requests_per_minute":5},"allowed_origins":["https://a.example"]}`,
		`{"name":"up","base_url":"https://api.example/v1","api_key_env":"KEY","models":["m"],"prompt_price_per_million":2.5}`,
		`{"name":1}`, `{"overrides":{"max_concurrent":-1}}`, `{"prompt_price_per_million":1e300}`, `[]`, `nul`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(kind string, err error) {
			var field *quota.FieldError
			if err != nil && !errors.As(err, &field) {
				t.Fatalf("%s: %q refused without a field error: %v", kind, body, err)
			}
		}
		_, err := planFromJSON(bytes.NewReader(body), "")
		check("plan", err)
		_, err = tenantFromJSON(bytes.NewReader(body), "acme")
		check("tenant", err)
		_, err = providerFromJSON(bytes.NewReader(body), "")
		check("provider", err)
		d, err := rlsFromJSON(bytes.NewReader(body), "")
		check("rls domain", err)
		if err == nil {
			config.NormaliseRLSDomain(d)
			check("rls domain", config.ValidateRLSDomain(d))
		}
	})
}

// FuzzRLSRequest feeds arbitrary Envoy requests to the checks
// ShouldRateLimit makes before it counts anything: a request is refused
// with a field error or each of its descriptors gets a counter whose name
// is a valid tenant, and matching it against rules never fails.
func FuzzRLSRequest(f *testing.F) {
	for _, req := range []*rlsv3.RateLimitRequest{
		{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("remote_address", "10.0.0.1")}},
		{Domain: "edge", HitsAddend: 3, Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("path", "/api/x", "method", "POST"), descriptor("k", strings.Repeat("v", 300))}},
		{Domain: "a/b", Descriptors: []*ratelimitv3.RateLimitDescriptor{{Entries: descriptor("k", "v").Entries,
			Limit: &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(9)}}}},
		{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{{Entries: descriptor("k", "v").Entries,
			Limit: &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(585)}}}},
		{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{{Entries: descriptor("k", "v").Entries,
			Limit: &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_SECOND, UnitMultiplier: wrapperspb.UInt32(1<<32 - 1)}}}},
		{Domain: strings.Repeat("/", 128), Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("k", "v")}},
		{},
	} {
		data, _ := proto.Marshal(req)
		f.Add(data)
	}
	fsm := config.NewFSM()
	d, err := rlsFromJSON(strings.NewReader(edgeRules), "")
	if err != nil {
		f.Fatal(err)
	}
	config.NormaliseRLSDomain(d)
	cmd, _ := proto.Marshal(&configv1.Command{Op: &configv1.Command_PutRlsDomain{PutRlsDomain: d}})
	if res := fsm.Apply(&raft.Log{Index: 1, Data: cmd}).(*configv1.Result); res.GetCode() != 0 {
		f.Fatal(res.GetMessage())
	}
	svc := &rlsService{}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req rlsv3.RateLimitRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if err := validateRLSRequest(&req); err != nil {
			var field *quota.FieldError
			if !errors.As(err, &field) {
				t.Fatalf("refused without a field error: %v", err)
			}
			return
		}
		for _, d := range req.GetDescriptors() {
			if err := quota.ValidateTenant("", rlsTenant(req.GetDomain(), d.GetEntries())); err != nil {
				t.Fatalf("%v: the counter is no tenant: %v", d, err)
			}
			if l, _ := svc.limitFor(fsm.View(), req.GetDomain(), d); l != nil && !l.unlimited && (l.period <= 0 || l.period > limiter.MaxPeriod) {
				t.Fatalf("%v: a window of %v", d, l.period)
			}
		}
	})
}
