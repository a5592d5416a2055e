package config

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

func rlsLimit(unit string, rpu uint32) *configv1.RLSRateLimit {
	return &configv1.RLSRateLimit{Unit: unit, RequestsPerUnit: rpu}
}

// testRLSDomain is envoyproxy/ratelimit's own README example, with a
// prefix rule and a shadowed one added.
func testRLSDomain() *configv1.RLSDomain {
	return &configv1.RLSDomain{Domain: "edge", Descriptors: []*configv1.RLSDescriptor{
		{Key: "remote_address", RateLimit: rlsLimit("second", 5)},
		{Key: "database", Value: "users", RateLimit: rlsLimit("second", 500)},
		{Key: "database", Value: "default", RateLimit: rlsLimit("second", 50), ShadowMode: true},
		{Key: "path", Value: "/api/*", RateLimit: rlsLimit("minute", 3)},
		{Key: "path", Value: "/api/v2/*", RateLimit: rlsLimit("minute", 7)},
		{Key: "key", Value: "value", Descriptors: []*configv1.RLSDescriptor{
			{Key: "subkey", RateLimit: rlsLimit("hour", 10)},
			{Key: "subkey", Value: "special", RateLimit: rlsLimit("hour", 20)},
			{Key: "free", Value: "yes", RateLimit: &configv1.RLSRateLimit{Unlimited: true}},
		}},
	}}
}

func TestRLSMatchFollowsEnvoysRules(t *testing.T) {
	t.Parallel()
	f := NewFSM()
	applyAll(t, f, &configv1.Command{Op: &configv1.Command_PutRlsDomain{PutRlsDomain: testRLSDomain()}})
	v := f.View()
	for _, tc := range []struct {
		entries []RLSEntry
		want    uint32 // requests_per_unit of the rule matched; 0: none
	}{
		{[]RLSEntry{{"remote_address", "10.0.0.1"}}, 5},           // key alone: any value
		{[]RLSEntry{{"database", "users"}}, 500},                  // exact value
		{[]RLSEntry{{"database", "other"}}, 0},                    // a value no rule names
		{[]RLSEntry{{"path", "/api/v1/x"}}, 3},                    // prefix
		{[]RLSEntry{{"path", "/api/v2/x"}}, 3},                    // the first prefix in the rules' order wins
		{[]RLSEntry{{"path", "/static"}}, 0},                      // no prefix matches
		{[]RLSEntry{{"key", "value"}}, 0},                         // a rule with no limit of its own
		{[]RLSEntry{{"key", "value"}, {"subkey", "any"}}, 10},     // nested, key alone
		{[]RLSEntry{{"key", "value"}, {"subkey", "special"}}, 20}, // nested, the exact value before the key alone
		{[]RLSEntry{{"remote_address", "1"}, {"extra", "x"}}, 0},  // the request deeper than the rules: no limit
		{[]RLSEntry{{"unknown", "x"}, {"subkey", "any"}}, 0},      // the first entry matches nothing
	} {
		rule, known := v.RLSMatch("edge", tc.entries)
		if !known || rule.GetRateLimit().GetRequestsPerUnit() != tc.want {
			t.Errorf("%v: matched %v (domain known %v), want %d per unit", tc.entries, rule, known, tc.want)
		}
	}
	if rule, _ := v.RLSMatch("edge", []RLSEntry{{"key", "value"}, {"free", "yes"}}); !rule.GetRateLimit().GetUnlimited() {
		t.Errorf("unlimited rule: matched %v", rule)
	}
	if rule, _ := v.RLSMatch("edge", []RLSEntry{{"database", "default"}}); !rule.GetShadowMode() {
		t.Errorf("shadow rule: matched %v", rule)
	}
	if _, known := v.RLSMatch("nowhere", []RLSEntry{{"remote_address", "1"}}); known {
		t.Error("an unknown domain is known")
	}

	applyAll(t, f, &configv1.Command{Op: &configv1.Command_DeleteRlsDomain{DeleteRlsDomain: &configv1.DeleteRLSDomain{Domain: "edge"}}})
	if _, known := f.View().RLSMatch("edge", []RLSEntry{{"remote_address", "1"}}); known {
		t.Error("a deleted domain still matches")
	}
}

func TestValidateRLSDomainNamesTheField(t *testing.T) {
	t.Parallel()
	deep := &configv1.RLSDescriptor{Key: "k", RateLimit: rlsLimit("second", 1)}
	for range maxRLSDepth {
		deep = &configv1.RLSDescriptor{Key: "k", Descriptors: []*configv1.RLSDescriptor{deep}}
	}
	for _, tc := range []struct {
		edit func(d *configv1.RLSDomain)
		want string
	}{
		{func(d *configv1.RLSDomain) { d.Domain = "" }, "domain:"},
		{func(d *configv1.RLSDomain) { d.Domain = "a\nb" }, "domain: must not hold control characters"},
		{func(d *configv1.RLSDomain) { d.FailurePolicy = "maybe" }, "failure_policy:"},
		{func(d *configv1.RLSDomain) { d.Descriptors[0].Key = "" }, "descriptors[0].key: is required"},
		{func(d *configv1.RLSDomain) { d.Descriptors[1].Value = "x\x00" }, "descriptors[1].value: must not hold control characters"},
		{func(d *configv1.RLSDomain) { d.Descriptors[2].Value = "users" }, `descriptors[2]: key "database" with value "users" is already matched by descriptors[1]`},
		{func(d *configv1.RLSDomain) { d.Descriptors[0].RateLimit.Unit = "fortnight" }, `descriptors[0].rate_limit.unit: "fortnight" is not second`},
		{func(d *configv1.RLSDomain) { d.Descriptors[0].RateLimit.Unlimited = true }, "descriptors[0].rate_limit: unlimited takes no unit"},
		{func(d *configv1.RLSDomain) {
			d.Descriptors[0].RateLimit = &configv1.RLSRateLimit{Unit: "year", RequestsPerUnit: 1, UnitMultiplier: 2}
		}, "descriptors[0].rate_limit.unit_multiplier: the window"},
		{func(d *configv1.RLSDomain) { d.Descriptors[5].Descriptors[0].RateLimit.Unit = "" }, "descriptors[5].descriptors[0].rate_limit.unit:"},
		{func(d *configv1.RLSDomain) { d.Descriptors = append(d.Descriptors, deep) }, "nest at most 8 deep"},
	} {
		d := testRLSDomain()
		tc.edit(d)
		err := ValidateRLSDomain(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", d, err, tc.want)
		}
	}
	if err := ValidateRLSDomain(testRLSDomain()); err != nil {
		t.Fatal(err)
	}
	// What envoyproxy/ratelimit accepts: a limit of 0 (refuse all),
	// unlimited with a rate, shadow mode without a limit, a domain
	// named as Envoy Gateway names them.
	ok := testRLSDomain()
	ok.Domain = "default/eg/http"
	ok.Descriptors[0].RateLimit.RequestsPerUnit = 0
	ok.Descriptors[5].ShadowMode = true
	ok.Descriptors[5].Descriptors[2].RateLimit.RequestsPerUnit = 7
	if err := ValidateRLSDomain(ok); err != nil {
		t.Errorf("what envoyproxy/ratelimit accepts: %v", err)
	}
	d := testRLSDomain()
	d.Descriptors[0].RateLimit.Unit = "SECOND"
	NormaliseRLSDomain(d)
	if !proto.Equal(d, testRLSDomain()) {
		t.Errorf("normalised units: %v", d)
	}
}
