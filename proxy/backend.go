package proxy

import (
	"context"
	"time"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
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
	// Progress notes what an admitted request has used so far (the
	// prompt once it goes upstream, a stream's tokens as they pass), so a
	// crash of this node before Settle bills that much. It must not block.
	Progress(r *Reservation, u quota.Usage)
	// Settle settles an admitted reservation once with what the request
	// used. It must not block.
	Settle(r *Reservation, u quota.Usage)
}

// Reservation is a reserver's decision.
type Reservation struct {
	Allowed  bool
	Owner    string // the node that decided
	Degraded bool   // the owner was unreachable; the failure policy decided
	Limits   []quota.LimitStatus
	// Ticket is the reserver's own, for Settle.
	Ticket any
}
