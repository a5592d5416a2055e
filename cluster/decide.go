package cluster

// Deciding on the owner: a plan check's limits from the tenant's plan, the
// monthly budget against the ledger, the store's reservation, and the
// usage it records for the next flush.

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// Config returns the node's current copy of the replicated configuration.
// It never waits on the network.
func (n *Node) Config() *config.View { return n.fsm.View() }

// resolvePlan fills in a plan check's limits and failure policy from the
// tenant's plan and overrides in this node's configuration.
func (n *Node) resolvePlan(req *quota.CheckRequest) error {
	v := n.Config()
	t, ok := v.Tenant(req.Tenant)
	if !ok {
		return fmt.Errorf("%w %q", quota.ErrUnknownTenant, req.Tenant)
	}
	if t.GetSuspended() {
		return fmt.Errorf("%w: %q", quota.ErrTenantSuspended, req.Tenant)
	}
	p, ok := v.Plan(t.GetPlan())
	if !ok {
		return fmt.Errorf("%w: %q has plan %q, which does not exist", quota.ErrUnknownTenant, req.Tenant, t.GetPlan())
	}
	eff := config.EffectivePlan(p, t)
	req.Limits = config.PlanLimits(eff)
	if c := eff.GetMaxConcurrent(); req.Reserve && c > 0 {
		ttl := req.LeaseTTL
		if ttl <= 0 {
			ttl = quota.DefaultLeaseTTL
		}
		req.Limits = append(req.Limits, limiter.Limit{Name: quota.LimitConcurrentRequests, Algorithm: limiter.Concurrency, Limit: c, Period: ttl})
	}
	policy, err := quota.ParseFailurePolicy(eff.GetFailurePolicy())
	if err != nil {
		policy = quota.PolicyLocal
	}
	req.FailurePolicy = policy
	return nil
}

// Now is the time the node's limiter runs on: windows align to it.
func (n *Node) Now() time.Time {
	if n.cfg.Clock != nil {
		return n.cfg.Clock.Now()
	}
	return time.Now()
}

// decideOwned decides req in the store of owned tenants. For a plan check
// the monthly budget left is the plan's budget less the usage the ledger
// has committed this month; the store's month entry holds the rest (what
// this node has admitted and not flushed yet). Admitted plan usage is
// recorded for the next flush.
func (n *Node) decideOwned(req *quota.CheckRequest) (*quota.CheckResponse, error) {
	month := slices.IndexFunc(req.Limits, func(l limiter.Limit) bool { return l.Name == quota.LimitTokensPerMonth })
	if !req.Plan || month < 0 {
		resp, err := n.decideIn(n.store, req)
		if err == nil && req.Plan && !req.Reserve && resp.Allowed {
			n.recordUsage(req, n.Now(), -1, 0)
		}
		return resp, err
	}
	now := n.Now().UTC()
	budget := req.Limits[month].Limit
	left := budget - n.fsm.MonthUsage(req.Tenant, now.Format("2006-01")).GetTokens()
	exhausted := left <= 0 && req.Tokens > 0
	local := *req
	local.Limits = slices.Clone(req.Limits)
	local.Limits[month].Limit = max(left, 1)
	if exhausted {
		local.Hits, local.Tokens = 0, 0 // only look
	}
	resp, err := n.decideIn(n.store, &local)
	if err != nil {
		return nil, err
	}
	st := &resp.Limits[month]
	st.Limit = budget
	untilNext := limiter.NextMonth(now).Sub(now)
	if exhausted {
		resp.Allowed, st.Allowed, st.Remaining, st.ResetAfter = false, false, 0, untilNext
	}
	if !st.Allowed {
		// Whatever is left of the budget, nothing more is admitted before
		// it renews at the start of the next UTC month: a request larger
		// than what is left would be refused again every second.
		st.RetryAfter = untilNext
	}
	if resp.Allowed && !req.Reserve { // a reservation is recorded when it is settled
		n.recordUsage(req, now, st.Window, req.Tokens)
	}
	return resp, nil
}

// recordUsage notes an admitted plan check's usage, decided at now, for
// the next flush; charged tokens were counted in this node's month entry
// (window).
func (n *Node) recordUsage(req *quota.CheckRequest, now time.Time, window, charged int64) {
	day := now.UTC().Format("2006-01-02")
	n.usage.add(dayKey{tenant: req.Tenant, day: day}, &configv1.Usage{Requests: req.Hits, Tokens: req.Tokens}, window, charged)
}

// decideIn reserves req in store. Its errors are limiter.ErrMoved and
// quota.ErrOverloaded (the store holds the most leases it may).
func (n *Node) decideIn(store *limiter.Store, req *quota.CheckRequest) (*quota.CheckResponse, error) {
	// On the stack for the usual few limits.
	var reqBuf [4]limiter.Request
	var resBuf [4]limiter.Result
	reqs, results := reqBuf[:0], resBuf[:0]
	for i, l := range req.Limits {
		reqs = append(reqs, limiter.Request{Limit: l, Hits: req.HitsFor(i)})
		results = append(results, limiter.Result{})
	}
	allowed, err := store.Reserve(req.Tenant, reqs, results)
	switch {
	case errors.Is(err, limiter.ErrMoved):
		return nil, err
	case errors.Is(err, limiter.ErrTooManyLeases):
		return nil, fmt.Errorf("%w: %v", quota.ErrOverloaded, err)
	}
	if err != nil {
		// Validate has already accepted the request, so the store cannot
		// refuse it; if it ever does, deny rather than admit.
		n.log.Error("store refused a validated check", "tenant", req.Tenant, "err", err)
	}
	resp := quota.NewCheckResponse(len(results))
	resp.Allowed, resp.Owner = allowed, n.name
	for i, r := range results {
		resp.Limits[i] = quota.LimitStatus{Name: req.Limits[i].Name, Result: r}
	}
	return resp, nil
}
