package quota

import (
	"errors"
	"time"
)

// Limits a tenant's plan applies to a check, by name.
const (
	LimitRequestsPerMinute = "requests_per_minute"
	LimitTokensPerMinute   = "tokens_per_minute"
	LimitTokensPerMonth    = "tokens_per_month"
	// LimitConcurrentRequests is the plan's max_concurrent, held by
	// gateway reservations only.
	LimitConcurrentRequests = "concurrent_requests"
)

// IsPlanLimit reports whether name is one of a plan's limits: a name the
// callers of the check API may not give their own limits.
func IsPlanLimit(name string) bool {
	switch name {
	case LimitRequestsPerMinute, LimitTokensPerMinute, LimitTokensPerMonth, LimitConcurrentRequests:
		return true
	}
	return false
}

// DefaultLeaseTTL is how long a gateway reservation's concurrency lease
// lives when the gateway names no TTL: a lease whose request never settles
// (its node crashed) comes back after it.
const DefaultLeaseTTL = 10 * time.Minute

// ErrUnknownTenant means a plan check or key names a tenant the
// configuration does not have (or no longer has).
var ErrUnknownTenant = errors.New("unknown tenant")

// ErrTenantSuspended means the tenant exists but is suspended: nothing it
// asks for is admitted.
var ErrTenantSuspended = errors.New("tenant suspended")

// Usage is what an admitted gateway request consumed. CostMicros is in
// micro-dollars.
type Usage struct {
	Model                          string
	PromptTokens, CompletionTokens int64
	CostMicros                     int64
	// Failed says the request came to nothing (the upstream failed): the
	// whole reservation is refunded and no usage is recorded.
	Failed bool
}

// Tokens is what the request is charged against the token limits.
func (u Usage) Tokens() int64 {
	if u.Failed {
		return 0
	}
	return u.PromptTokens + u.CompletionTokens
}
