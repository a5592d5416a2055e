package cluster

import (
	"context"
	"maps"
	"net"
	neturl "net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/cluster/config"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// Admin is the node's configuration operations, which the HTTP API under
// /admin/v1/ and the gRPC Admin service both call. Input is checked here,
// against this node's copy of the configuration, so that bad input gets an
// error naming the field; the FSM checks again what only the leader can
// know for sure (a name taken meanwhile). Reads answer from this node's
// copy; writes go through the Raft leader.
type Admin struct{ n *Node }

// Admin returns the node's configuration operations.
func (n *Node) Admin() *Admin { return &Admin{n} }

// Plans, Tenants and Providers list this node's copy, sorted by name.
func (a *Admin) Plans() []*configv1.Plan         { return a.n.Config().Plans() }
func (a *Admin) Tenants() []*configv1.Tenant     { return a.n.Config().Tenants() }
func (a *Admin) Providers() []*configv1.Provider { return a.n.Config().Providers() }

// RLSDomains lists this node's copy of the Envoy rate limit domains.
func (a *Admin) RLSDomains() []*configv1.RLSDomain { return a.n.Config().RLSDomains() }

// Delete deletes the plan, tenant, provider or rls domain (kind) named
// name.
func (a *Admin) Delete(ctx context.Context, kind, name string) error {
	return a.n.write(ctx, deletion(kind, name))
}

// Raft is this node's view of the Raft cluster and its configuration.
func (a *Admin) Raft() RaftStatus { return a.n.raftStatus() }

// PutMode says whether a put may create (the name must be free), update
// (the name must exist), or either when neither is set.
type PutMode struct{ Create, Update bool }

func (a *Admin) PutPlan(ctx context.Context, p *configv1.Plan, mode PutMode) (*configv1.Plan, error) {
	n := a.n
	if p == nil {
		return nil, quota.Invalid("plan", "is required")
	}
	if p.GetFailurePolicy() == "" {
		p.FailurePolicy = "local"
	}
	if err := config.ValidatePlan(p); err != nil {
		return nil, err
	}
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutPlan{PutPlan: p}, Create: mode.Create, Update: mode.Update}); err != nil {
		return nil, err
	}
	return p, nil
}

func (a *Admin) PutTenant(ctx context.Context, t *configv1.Tenant, mode PutMode) (*configv1.Tenant, error) {
	n := a.n
	if t == nil {
		return nil, quota.Invalid("tenant", "is required")
	}
	if err := config.ValidateTenant(t, n.Config()); err != nil {
		return nil, err
	}
	t.CreatedNanos = time.Now().UnixNano() // kept from the old entry on a replace
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutTenant{PutTenant: t}, Create: mode.Create, Update: mode.Update}); err != nil {
		return nil, err
	}
	if got, ok := n.Config().Tenant(t.GetId()); ok {
		return got, nil
	}
	return t, nil
}

func (a *Admin) CreateKey(ctx context.Context, tenant, name string) (*configv1.APIKey, string, error) {
	n := a.n
	if _, err := a.Tenant(tenant); err != nil {
		return nil, "", err
	}
	if len(name) > 128 {
		return nil, "", quota.Invalid("name", "at most 128 bytes")
	}
	for attempt := 0; ; attempt++ {
		k, secret := config.NewKey(tenant, name, time.Now())
		err := n.write(ctx, &configv1.Command{Op: &configv1.Command_CreateKey{CreateKey: k}})
		if status.Code(err) == codes.AlreadyExists && attempt < 3 {
			continue // an id taken by another key: draw again
		}
		if err != nil {
			return nil, "", err
		}
		return config.WithoutHash(k), secret, nil
	}
}

// Keys lists a tenant's keys (every key if tenant is empty), without
// their hashes.
func (a *Admin) Keys(tenant string) ([]*configv1.APIKey, error) {
	n := a.n
	v := n.Config()
	if _, ok := v.Tenant(tenant); tenant != "" && !ok {
		return nil, notFound("tenant", tenant)
	}
	var out []*configv1.APIKey
	for _, k := range v.Keys() {
		if tenant == "" || k.GetTenant() == tenant {
			out = append(out, config.WithoutHash(k))
		}
	}
	return out, nil
}

// Plan, Tenant and Provider read this node's copy; an unknown
// name is NotFound.
func (a *Admin) Plan(name string) (*configv1.Plan, error) {
	n := a.n
	return found(n.Config().Plan, "plan", name)
}

func (a *Admin) Tenant(id string) (*configv1.Tenant, error) {
	n := a.n
	return found(n.Config().Tenant, "tenant", id)
}

func (a *Admin) Provider(name string) (*configv1.Provider, error) {
	n := a.n
	return found(n.Config().Provider, "provider", name)
}

func found[T any](lookup func(string) (T, bool), kind, name string) (T, error) {
	v, ok := lookup(name)
	if !ok {
		return v, notFound(kind, name)
	}
	return v, nil
}

func notFound(kind, name string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, name)
}

func (a *Admin) RevokeKey(ctx context.Context, id string) (*configv1.APIKey, error) {
	n := a.n
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_RevokeKey{RevokeKey: &configv1.RevokeKey{Id: id, RevokedNanos: time.Now().UnixNano()}}}); err != nil {
		return nil, err
	}
	k, err := found(n.Config().Key, "key", id)
	if err != nil {
		return nil, err
	}
	return config.WithoutHash(k), nil
}

func (a *Admin) PutProvider(ctx context.Context, p *configv1.Provider, mode PutMode) (*configv1.Provider, error) {
	n := a.n
	if p == nil {
		return nil, quota.Invalid("provider", "is required")
	}
	if err := config.ValidateProvider(p); err != nil {
		return nil, err
	}
	if err := n.cfg.Upstreams.check(p); err != nil {
		return nil, err
	}
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutProvider{PutProvider: p}, Create: mode.Create, Update: mode.Update}); err != nil {
		return nil, err
	}
	return p, nil
}

// PutRLSDomain writes an Envoy rate limit domain, its units lower-cased.
func (a *Admin) PutRLSDomain(ctx context.Context, d *configv1.RLSDomain, mode PutMode) (*configv1.RLSDomain, error) {
	if d == nil {
		return nil, quota.Invalid("domain", "is required")
	}
	config.NormaliseRLSDomain(d)
	if err := config.ValidateRLSDomain(d); err != nil {
		return nil, err
	}
	if err := a.n.write(ctx, &configv1.Command{Op: &configv1.Command_PutRlsDomain{PutRlsDomain: d}, Create: mode.Create, Update: mode.Update}); err != nil {
		return nil, err
	}
	return d, nil
}

// RLSDomain reads this node's copy of an Envoy rate limit domain.
func (a *Admin) RLSDomain(domain string) (*configv1.RLSDomain, error) {
	return found(a.n.Config().RLSDomain, "rls domain", domain)
}

// Usage is a tenant's committed usage in a month (YYYY-MM), in
// total, by model and by day.
func (a *Admin) Usage(tenant, month string) (*configv1.UsageReport, error) {
	n := a.n
	if month == "" {
		month = time.Now().UTC().Format("2006-01")
	} else if _, err := time.Parse("2006-01", month); err != nil {
		return nil, quota.Invalid("month", "%q is not YYYY-MM", month)
	}
	total := n.fsm.MonthUsage(tenant, month)
	if _, ok := n.Config().Tenant(tenant); !ok && total.GetRequests() == 0 {
		return nil, notFound("tenant", tenant)
	}
	out := &configv1.UsageReport{Tenant: tenant, Month: month, Total: total}
	// Plan checks of the check API name no model: "" holds them apart.
	byModel := map[string]*configv1.Usage{"": {}}
	for _, d := range n.fsm.DayUsage(tenant, month) {
		config.AddUsage(byModel, d.GetModel(), d.GetUsage())
		if d.GetModel() != "" {
			out.Days = append(out.Days, d)
		}
	}
	out.Checks = byModel[""]
	delete(byModel, "")
	for _, m := range slices.Sorted(maps.Keys(byModel)) {
		out.Models = append(out.Models, &configv1.ModelUsage{Model: m, Usage: byModel[m]})
	}
	return out, nil
}

// write applies a configuration command and turns the FSM's refusal into
// a gRPC status error.
func (n *Node) write(ctx context.Context, cmd *configv1.Command) error {
	res, err := n.apply(ctx, cmd)
	switch {
	case err != nil:
		n.countWrite("no_quorum")
		return err
	case res.GetCode() != 0:
		n.countWrite("refused")
		return status.Error(codes.Code(res.GetCode()), res.GetMessage())
	}
	n.countWrite("ok")
	return nil
}

// deletion is the command deleting a plan, tenant, provider or rls
// domain.
func deletion(kind, name string) *configv1.Command {
	switch kind {
	case "rls domain":
		return &configv1.Command{Op: &configv1.Command_DeleteRlsDomain{DeleteRlsDomain: &configv1.DeleteRLSDomain{Domain: name}}}
	case "plan":
		return &configv1.Command{Op: &configv1.Command_DeletePlan{DeletePlan: &configv1.DeletePlan{Name: name}}}
	case "tenant":
		return &configv1.Command{Op: &configv1.Command_DeleteTenant{DeleteTenant: &configv1.DeleteTenant{Id: name}}}
	}
	return &configv1.Command{Op: &configv1.Command_DeleteProvider{DeleteProvider: &configv1.DeleteProvider{Name: name}}}
}

func (n *Node) countWrite(result string) {
	if n.raftMetrics != nil {
		n.raftMetrics.writes.WithLabelValues(result).Inc()
	}
}

// UpstreamPolicy is what a gateway lets a provider use: environment
// variables under KeyEnvPrefix only (none if empty), and no link-local
// (metadata) address unless AllowPrivate. The gateway enforces it when it
// calls; the admin operations refuse what it would not call, so a mistake
// shows when the provider is written. (Not the FSM: a node's policy is its
// own, and replicas must apply alike.)
type UpstreamPolicy struct {
	KeyEnvPrefix string
	AllowPrivate bool
}

func (u UpstreamPolicy) check(p *configv1.Provider) error {
	if env := p.GetApiKeyEnv(); env != "" && u.KeyEnvPrefix != "" && !strings.HasPrefix(env, u.KeyEnvPrefix) {
		return quota.Invalid("api_key_env", "%q does not start with %q (--provider-key-prefix): the gateway reads no other variable of a node's environment", env, u.KeyEnvPrefix)
	}
	if u.AllowPrivate {
		return nil
	}
	if url, err := neturl.Parse(p.GetBaseUrl()); err == nil {
		if ip := net.ParseIP(url.Hostname()); ip != nil && quota.MetadataAddress(ip) {
			return quota.Invalid("base_url", "%s is a link-local (metadata) address: refused without --allow-private-upstreams", url.Hostname())
		}
	}
	return nil
}
