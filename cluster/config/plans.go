package config

import (
	"time"

	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// DefaultPlans are the tiers a new cluster starts with (0 means no limit).
func DefaultPlans() []*configv1.Plan {
	return []*configv1.Plan{
		{Name: "bronze", RequestsPerMinute: 60, TokensPerMinute: 10_000, TokensPerMonth: 1_000_000, MaxConcurrent: 5, Priority: 10, FailurePolicy: "local"},
		{Name: "silver", RequestsPerMinute: 300, TokensPerMinute: 100_000, TokensPerMonth: 10_000_000, MaxConcurrent: 20, Priority: 7, FailurePolicy: "local"},
		{Name: "gold", RequestsPerMinute: 1_000, TokensPerMinute: 500_000, TokensPerMonth: 100_000_000, MaxConcurrent: 100, Priority: 5, FailurePolicy: "local"},
		{Name: "platinum", RequestsPerMinute: 10_000, TokensPerMinute: 2_000_000, TokensPerMonth: 0, MaxConcurrent: 500, Priority: 1, FailurePolicy: "local"},
	}
}

// EffectivePlan is a tenant's plan with the tenant's overrides applied.
func EffectivePlan(p *configv1.Plan, t *configv1.Tenant) *configv1.Plan {
	out := &configv1.Plan{
		Name:              p.GetName(),
		RequestsPerMinute: p.GetRequestsPerMinute(),
		TokensPerMinute:   p.GetTokensPerMinute(),
		TokensPerMonth:    p.GetTokensPerMonth(),
		MaxConcurrent:     p.GetMaxConcurrent(),
		Priority:          p.GetPriority(),
		FailurePolicy:     p.GetFailurePolicy(),
		AllowedModels:     p.GetAllowedModels(),
		DefaultMaxTokens:  p.GetDefaultMaxTokens(),
	}
	o := t.GetOverrides()
	if o == nil {
		return out
	}
	if o.RequestsPerMinute != nil {
		out.RequestsPerMinute = o.GetRequestsPerMinute()
	}
	if o.TokensPerMinute != nil {
		out.TokensPerMinute = o.GetTokensPerMinute()
	}
	if o.TokensPerMonth != nil {
		out.TokensPerMonth = o.GetTokensPerMonth()
	}
	if o.MaxConcurrent != nil {
		out.MaxConcurrent = o.GetMaxConcurrent()
	}
	if o.Priority != nil {
		out.Priority = o.GetPriority()
	}
	if o.FailurePolicy != nil {
		out.FailurePolicy = o.GetFailurePolicy()
	}
	return out
}

// PlanLimits turns a plan into the limits of a check: per-minute token
// buckets whose burst is the per-minute figure, and the monthly budget as
// a calendar-month quota. A field of 0 adds no limit.
func PlanLimits(p *configv1.Plan) []limiter.Limit {
	var out []limiter.Limit
	if r := p.GetRequestsPerMinute(); r > 0 {
		out = append(out, limiter.Limit{Name: quota.LimitRequestsPerMinute, Algorithm: limiter.TokenBucket, Limit: r, Period: time.Minute, Burst: r})
	}
	if t := p.GetTokensPerMinute(); t > 0 {
		out = append(out, limiter.Limit{Name: quota.LimitTokensPerMinute, Algorithm: limiter.TokenBucket, Limit: t, Period: time.Minute, Burst: t})
	}
	if m := p.GetTokensPerMonth(); m > 0 {
		out = append(out, limiter.Limit{Name: quota.LimitTokensPerMonth, Algorithm: limiter.CalendarMonth, Limit: m})
	}
	return out
}
