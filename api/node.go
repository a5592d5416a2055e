package api

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/cluster"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// Checker decides checks: the whole of what the check APIs (HTTP and
// gRPC) need of a node.
type Checker interface {
	Check(ctx context.Context, req *quota.CheckRequest) (*quota.CheckResponse, error)
	CheckBatch(ctx context.Context, reqs []quota.CheckRequest) ([]*quota.CheckResponse, error)
	Release(ctx context.Context, req *quota.ReleaseRequest) error
}

// Node is a cluster node as the HTTP API serves it: its checks, its view
// of the cluster, its health and its metrics.
type Node interface {
	Checker
	Name() string
	Ready() bool
	// Owner is the node that owns tenant in this node's view.
	Owner(tenant string) string
	Overview() cluster.Overview
	Registry() *prometheus.Registry
}

// Admin is the configuration operations the admin APIs (HTTP and gRPC)
// serve; *cluster.Admin is one.
type Admin interface {
	Plans() []*configv1.Plan
	Plan(name string) (*configv1.Plan, error)
	PutPlan(ctx context.Context, p *configv1.Plan, mode cluster.PutMode) (*configv1.Plan, error)
	Tenants() []*configv1.Tenant
	Tenant(id string) (*configv1.Tenant, error)
	PutTenant(ctx context.Context, t *configv1.Tenant, mode cluster.PutMode) (*configv1.Tenant, error)
	Providers() []*configv1.Provider
	Provider(name string) (*configv1.Provider, error)
	PutProvider(ctx context.Context, p *configv1.Provider, mode cluster.PutMode) (*configv1.Provider, error)
	RLSDomains() []*configv1.RLSDomain
	RLSDomain(domain string) (*configv1.RLSDomain, error)
	PutRLSDomain(ctx context.Context, d *configv1.RLSDomain, mode cluster.PutMode) (*configv1.RLSDomain, error)
	// Delete deletes the plan, tenant, provider or rls domain (kind) named
	// name.
	Delete(ctx context.Context, kind, name string) error
	CreateKey(ctx context.Context, tenant, name string) (*configv1.APIKey, string, error)
	Keys(tenant string) ([]*configv1.APIKey, error)
	RevokeKey(ctx context.Context, id string) (*configv1.APIKey, error)
	Usage(tenant, month string) (*configv1.UsageReport, error)
	Raft() cluster.RaftStatus
}
