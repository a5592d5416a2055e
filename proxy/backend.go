package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// Config is the replicated configuration as the gateway reads it. Every
// method answers from memory: reads never wait on the network.
type Config interface {
	// VerifyKey returns the live (not revoked) key whose plaintext is
	// secret.
	VerifyKey(secret string) (*configv1.APIKey, bool)
	Tenant(id string) (*configv1.Tenant, bool)
	// TenantPlan is the tenant's plan with its overrides applied.
	TenantPlan(id string) (*configv1.Plan, bool)
	// ModelProvider returns the provider that serves model.
	ModelProvider(model string) (*configv1.Provider, bool)
	// Models lists every model some provider serves.
	Models() []string
	// OriginAllowed reports whether any tenant allows browsers from
	// origin.
	OriginAllowed(origin string) bool
}

// Reserver takes reservations on tenants' owners and settles them.
type Reserver interface {
	// Reserve takes one request, tokens tokens and a concurrency lease
	// that lives for leaseTTL from the tenant's plan, all or nothing.
	Reserve(ctx context.Context, tenant string, tokens int64, leaseTTL time.Duration) (*Reservation, error)
	// Settle settles an admitted reservation once with what the request
	// used. It must not block.
	Settle(r *Reservation, u Usage)
}

// Reservation is a reserver's decision.
type Reservation struct {
	Allowed  bool
	Owner    string // the node that decided
	Degraded bool   // the owner was unreachable; the failure policy decided
	Limits   []LimitStatus
	// Ticket is the reserver's own, for Settle.
	Ticket any
}

// LimitStatus is the decision for one of the plan's limits.
type LimitStatus struct {
	Name string
	limiter.Result
}

// Usage is what an admitted request consumed. CostMicros is in
// micro-dollars.
type Usage struct {
	Model                          string
	PromptTokens, CompletionTokens int64
	CostMicros                     int64
	// Failed says the request came to nothing: the reservation is
	// refunded whole and no usage is recorded.
	Failed bool
}

// Names of the plan's limits in a Reservation.
const (
	LimitRequestsPerMinute  = "requests_per_minute"
	LimitTokensPerMinute    = "tokens_per_minute"
	LimitTokensPerMonth     = "tokens_per_month"
	LimitConcurrentRequests = "concurrent_requests"
)

// Errors a Reserver returns, wrapped, for answers other than 503.
var (
	// ErrUnknownTenant means the tenant has gone (deleted meanwhile).
	ErrUnknownTenant = errors.New("unknown tenant")
	// ErrTenantSuspended means the tenant is suspended.
	ErrTenantSuspended = errors.New("tenant suspended")
)
