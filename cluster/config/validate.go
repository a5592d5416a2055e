package config

import (
	"fmt"
	"net/url"
	"regexp"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// Validation of what a command carries, with errors naming the field. The
// admin operations check input here against the writer's copy of the
// configuration; the FSM checks again what only the leader can know for
// sure (a name taken meanwhile).

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	envPattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ValidateName checks a plan, tenant or provider name.
func ValidateName(field, name string) error {
	if !namePattern.MatchString(name) {
		return quota.Invalid(field, "%q: want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func checkModels(field string, models []string) error {
	for i, m := range models {
		if err := quota.CheckText(fmt.Sprintf("%s[%d]", field, i), m, 256); err != nil {
			return err
		}
	}
	return nil
}

// ValidatePlan checks every field of a plan.
func ValidatePlan(p *configv1.Plan) error {
	if err := ValidateName("name", p.GetName()); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"requests_per_minute", p.GetRequestsPerMinute()}, {"tokens_per_minute", p.GetTokensPerMinute()},
		{"tokens_per_month", p.GetTokensPerMonth()}, {"max_concurrent", p.GetMaxConcurrent()}, {"priority", int64(p.GetPriority())},
		{"default_max_tokens", p.GetDefaultMaxTokens()},
	} {
		if f.v < 0 {
			return quota.Invalid(f.name, "must be >= 0 (0: no limit), got %d", f.v)
		}
	}
	if p.GetMaxConcurrent() > 100_000 {
		return quota.Invalid("max_concurrent", "at most 100000, got %d", p.GetMaxConcurrent())
	}
	if _, err := quota.ParseFailurePolicy(p.GetFailurePolicy()); err != nil {
		return quota.Invalid("failure_policy", "%v", err)
	}
	return checkModels("allowed_models", p.GetAllowedModels())
}

// ValidateTenant checks every field of a tenant; its plan must exist in v.
func ValidateTenant(t *configv1.Tenant, v *View) error {
	if err := ValidateName("id", t.GetId()); err != nil {
		return err
	}
	if t.GetName() != "" {
		if err := quota.CheckText("name", t.GetName(), 256); err != nil {
			return err
		}
	}
	if t.GetPlan() == "" {
		return quota.Invalid("plan", "is required")
	}
	if _, ok := v.Plan(t.GetPlan()); !ok {
		return quota.Invalid("plan", "%q does not exist", t.GetPlan())
	}
	if o := t.GetOverrides(); o != nil {
		for _, f := range []struct {
			name string
			v    *int64
		}{
			{"requests_per_minute", o.RequestsPerMinute}, {"tokens_per_minute", o.TokensPerMinute},
			{"tokens_per_month", o.TokensPerMonth}, {"max_concurrent", o.MaxConcurrent},
		} {
			if f.v != nil && *f.v < 0 {
				return quota.Invalid("overrides."+f.name, "must be >= 0 (0: no limit), got %d", *f.v)
			}
		}
		if o.Priority != nil && *o.Priority < 0 {
			return quota.Invalid("overrides.priority", "must be >= 0, got %d", *o.Priority)
		}
		if o.MaxConcurrent != nil && *o.MaxConcurrent > 100_000 {
			return quota.Invalid("overrides.max_concurrent", "at most 100000, got %d", *o.MaxConcurrent)
		}
		if o.FailurePolicy != nil {
			if _, err := quota.ParseFailurePolicy(*o.FailurePolicy); err != nil || *o.FailurePolicy == "" {
				return quota.Invalid("overrides.failure_policy", "%q is not local, open or closed", *o.FailurePolicy)
			}
		}
	}
	if err := checkModels("allowed_models", t.GetAllowedModels()); err != nil {
		return err
	}
	for i, o := range t.GetAllowedOrigins() {
		u, err := url.Parse(o)
		if o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			return quota.Invalid(fmt.Sprintf("allowed_origins[%d]", i), "%q is not an origin like https://app.example.com, or *", o)
		}
	}
	return nil
}

// ValidateProvider checks every field of a provider.
func ValidateProvider(p *configv1.Provider) error {
	if err := ValidateName("name", p.GetName()); err != nil {
		return err
	}
	u, err := url.Parse(p.GetBaseUrl())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return quota.Invalid("base_url", "%q is not an http(s) URL", p.GetBaseUrl())
	}
	if p.GetApiKeyEnv() != "" && !envPattern.MatchString(p.GetApiKeyEnv()) {
		return quota.Invalid("api_key_env", "%q is not an environment variable name", p.GetApiKeyEnv())
	}
	if len(p.GetModels()) == 0 {
		return quota.Invalid("models", "at least one model is required")
	}
	if err := checkModels("models", p.GetModels()); err != nil {
		return err
	}
	if p.GetPromptPriceMicros() < 0 {
		return quota.Invalid("prompt_price_per_million", "must be >= 0")
	}
	if p.GetCompletionPriceMicros() < 0 {
		return quota.Invalid("completion_price_per_million", "must be >= 0")
	}
	return nil
}
