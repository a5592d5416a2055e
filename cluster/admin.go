package cluster

import (
	"context"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/cluster/config"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// The admin operations, shared by the HTTP API under /admin/v1/ and the
// gRPC Admin service. Input is checked here, against this node's copy of
// the configuration, so that bad input gets an error naming the field; the
// FSM checks again what only the leader can know for sure (a name taken
// meanwhile). Reads answer from this node's copy.

// putMode says whether a put may create, replace, or both.
type putMode struct{ create, update bool }

func (n *Node) putPlan(ctx context.Context, p *configv1.Plan, mode putMode) (*configv1.Plan, error) {
	if p == nil {
		return nil, quota.Invalid("plan", "is required")
	}
	if p.GetFailurePolicy() == "" {
		p.FailurePolicy = "local"
	}
	if err := config.ValidatePlan(p); err != nil {
		return nil, err
	}
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutPlan{PutPlan: p}, Create: mode.create, Update: mode.update}); err != nil {
		return nil, err
	}
	return p, nil
}

func (n *Node) putTenant(ctx context.Context, t *configv1.Tenant, mode putMode) (*configv1.Tenant, error) {
	if t == nil {
		return nil, quota.Invalid("tenant", "is required")
	}
	if err := config.ValidateTenant(t, n.Config()); err != nil {
		return nil, err
	}
	t.CreatedNanos = time.Now().UnixNano() // kept from the old entry on a replace
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutTenant{PutTenant: t}, Create: mode.create, Update: mode.update}); err != nil {
		return nil, err
	}
	if got, ok := n.Config().Tenant(t.GetId()); ok {
		return got, nil
	}
	return t, nil
}

func (n *Node) createKey(ctx context.Context, tenant, name string) (*configv1.APIKey, string, error) {
	if _, err := n.getTenant(tenant); err != nil {
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

// keysOf lists a tenant's keys (every key if tenant is empty), without
// their hashes.
func (n *Node) keysOf(tenant string) ([]*configv1.APIKey, error) {
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

// getPlan, getTenant and getProvider read this node's copy; an unknown
// name is NotFound.
func (n *Node) getPlan(name string) (*configv1.Plan, error) {
	return found(n.Config().Plan, "plan", name)
}

func (n *Node) getTenant(id string) (*configv1.Tenant, error) {
	return found(n.Config().Tenant, "tenant", id)
}

func (n *Node) getProvider(name string) (*configv1.Provider, error) {
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

func (n *Node) revokeKey(ctx context.Context, id string) (*configv1.APIKey, error) {
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_RevokeKey{RevokeKey: &configv1.RevokeKey{Id: id, RevokedNanos: time.Now().UnixNano()}}}); err != nil {
		return nil, err
	}
	k, err := found(n.Config().Key, "key", id)
	if err != nil {
		return nil, err
	}
	return config.WithoutHash(k), nil
}

func (n *Node) putProvider(ctx context.Context, p *configv1.Provider, mode putMode) (*configv1.Provider, error) {
	if p == nil {
		return nil, quota.Invalid("provider", "is required")
	}
	if err := config.ValidateProvider(p); err != nil {
		return nil, err
	}
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutProvider{PutProvider: p}, Create: mode.create, Update: mode.update}); err != nil {
		return nil, err
	}
	return p, nil
}

// usageReport is a tenant's committed usage in a month (YYYY-MM), in
// total, by model and by day.
func (n *Node) usageReport(tenant, month string) (*configv1.UsageReport, error) {
	if month == "" {
		month = time.Now().UTC().Format("2006-01")
	} else if _, err := time.Parse("2006-01", month); err != nil {
		return nil, quota.Invalid("month", "%q is not YYYY-MM", month)
	}
	total := n.fsm.MonthUsage(tenant, month)
	if _, ok := n.Config().Tenant(tenant); !ok && total.GetRequests() == 0 {
		return nil, notFound("tenant", tenant)
	}
	out := &configv1.UsageReport{Tenant: tenant, Month: month, Total: total, Days: n.fsm.DayUsage(tenant, month)}
	byModel := map[string]*configv1.Usage{}
	for _, d := range out.Days {
		config.AddUsage(byModel, d.GetModel(), d.GetUsage())
	}
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

// deletion is the command deleting a plan, tenant or provider.
func deletion(kind, name string) *configv1.Command {
	switch kind {
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
