package admin

import "time"

// The JSON shapes of the admin API. A limit of 0 means no limit; prices
// are dollars per million tokens; times are RFC 3339. The field tags are
// the wire format: changing one breaks every client already deployed.

// Plan is a tier of limits that tenants are on.
type Plan struct {
	Name              string   `json:"name"`
	RequestsPerMinute int64    `json:"requests_per_minute"`
	TokensPerMinute   int64    `json:"tokens_per_minute"`
	TokensPerMonth    int64    `json:"tokens_per_month"`
	MaxConcurrent     int64    `json:"max_concurrent"`
	Priority          int32    `json:"priority"`
	FailurePolicy     string   `json:"failure_policy"`
	AllowedModels     []string `json:"allowed_models"`
	DefaultMaxTokens  int64    `json:"default_max_tokens"`
}

// Overrides are a tenant's own limits in place of its plan's; nil is the
// plan's.
type Overrides struct {
	RequestsPerMinute *int64  `json:"requests_per_minute,omitempty"`
	TokensPerMinute   *int64  `json:"tokens_per_minute,omitempty"`
	TokensPerMonth    *int64  `json:"tokens_per_month,omitempty"`
	MaxConcurrent     *int64  `json:"max_concurrent,omitempty"`
	Priority          *int32  `json:"priority,omitempty"`
	FailurePolicy     *string `json:"failure_policy,omitempty"`
}

// Tenant is a customer whose use is limited. Status is active or
// suspended; empty, in a request, is active.
type Tenant struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Plan           string     `json:"plan"`
	Overrides      *Overrides `json:"overrides,omitempty"`
	Status         string     `json:"status"`
	AllowedModels  []string   `json:"allowed_models"`
	AllowedOrigins []string   `json:"allowed_origins"`
	CreatedAt      *time.Time `json:"created_at,omitempty"`
}

// KeyRequest is the body of a request that creates a key. Tenant may be
// left out where the path names the tenant.
type KeyRequest struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
}

// Key is an API key as the admin API shows it: never the key itself,
// but in the answer that creates it.
type Key struct {
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"`
	Tenant    string     `json:"tenant"`
	Name      string     `json:"name,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Revoked   bool       `json:"revoked"`
	// Key is the key itself, only in the answer that creates it.
	Key string `json:"key,omitempty"`
}

// Provider is an OpenAI-compatible upstream the gateway calls. The
// upstream's API key stays on the nodes, in the environment variable
// APIKeyEnv names.
type Provider struct {
	Name                      string   `json:"name"`
	BaseURL                   string   `json:"base_url"`
	APIKeyEnv                 string   `json:"api_key_env"`
	Models                    []string `json:"models"`
	PromptPricePerMillion     float64  `json:"prompt_price_per_million"`
	CompletionPricePerMillion float64  `json:"completion_price_per_million"`
}

// RLSDomain is a domain of Envoy's rate limit service: the descriptor
// rules ShouldRateLimit matches against, in the shape (and YAML field
// names) of envoyproxy/ratelimit's configuration files. FailurePolicy
// (local, open or closed) is Tollgate's: how a node decides when a
// descriptor's owner is unreachable.
type RLSDomain struct {
	Domain        string          `json:"domain" yaml:"domain"`
	Descriptors   []RLSDescriptor `json:"descriptors" yaml:"descriptors"`
	FailurePolicy string          `json:"failure_policy,omitempty" yaml:"failure_policy,omitempty"`
}

// RLSDescriptor matches one entry of a request's descriptor by key, and
// by value when Value is set ("v*" matches every value starting with v;
// no value matches any, each counted apart). Descriptors match the entries
// that follow.
type RLSDescriptor struct {
	Key         string          `json:"key" yaml:"key"`
	Value       string          `json:"value,omitempty" yaml:"value,omitempty"`
	RateLimit   *RLSRateLimit   `json:"rate_limit,omitempty" yaml:"rate_limit,omitempty"`
	ShadowMode  bool            `json:"shadow_mode,omitempty" yaml:"shadow_mode,omitempty"`
	Descriptors []RLSDescriptor `json:"descriptors,omitempty" yaml:"descriptors,omitempty"`
	// DetailedMetric and ValueToMetric are envoyproxy/ratelimit's
	// switches for its own statistics' names: read from its files, so that
	// they load, and never sent (Tollgate's metrics are its own).
	DetailedMetric bool `json:"-" yaml:"detailed_metric,omitempty"`
	ValueToMetric  bool `json:"-" yaml:"value_to_metric,omitempty"`
}

// RLSRateLimit is RequestsPerUnit per window of UnitMultiplier (1 if 0)
// units: second, minute, hour, day, week, month (30 days) or year (365).
type RLSRateLimit struct {
	Unit            string `json:"unit,omitempty" yaml:"unit,omitempty"`
	RequestsPerUnit uint32 `json:"requests_per_unit,omitempty" yaml:"requests_per_unit,omitempty"`
	UnitMultiplier  uint32 `json:"unit_multiplier,omitempty" yaml:"unit_multiplier,omitempty"`
	Unlimited       bool   `json:"unlimited,omitempty" yaml:"unlimited,omitempty"`
	Name            string `json:"name,omitempty" yaml:"name,omitempty"`
}

// Usage is what was used, and what it cost: CostMicros exactly, CostUSD
// for people.
type Usage struct {
	Requests         int64   `json:"requests"`
	Tokens           int64   `json:"tokens"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CostMicros       int64   `json:"cost_micros"`
	CostUSD          float64 `json:"cost_usd"`
}

// UsageReport is a tenant's usage in a month (YYYY-MM): the total, by
// model, and by day and model. Checks is what plan checks of the check
// API admitted, which name no model; Total is the models' sum plus Checks.
type UsageReport struct {
	Tenant string       `json:"tenant"`
	Month  string       `json:"month"`
	Total  Usage        `json:"total"`
	Models []ModelUsage `json:"models"`
	Days   []DayUsage   `json:"days"`
	Checks Usage        `json:"checks"`
}

// ModelUsage is one model's line of a report; its usage's fields are
// inline, beside the model's name.
type ModelUsage struct {
	Model string `json:"model"`
	Usage
}

// DayUsage is one model's use on one day (YYYY-MM-DD) of a report.
type DayUsage struct {
	Day   string `json:"day"`
	Model string `json:"model"`
	Usage
}
