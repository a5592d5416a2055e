package api

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/cluster"
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
	})
}
