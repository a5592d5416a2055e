package cluster

import (
	"time"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// closedRetryAfter is the retry hint of a check denied because its owner
// is unreachable: about the time gossip takes to declare a crashed node
// dead and hand its tenants to the survivors.
const closedRetryAfter = time.Second

// decideDegraded answers a check whose owner could not be reached, by the
// request's failure policy. The answer is marked degraded and names this
// node as the one that decided.
func (n *Node) decideDegraded(req *quota.CheckRequest) *quota.CheckResponse {
	resp := n.decidePolicy(req)
	if resp.Allowed && req.Plan && !req.Reserve {
		n.recordUsage(req, n.Now(), 0, 0) // used all the same; the owner's budget entry never saw it
	}
	return resp
}

func (n *Node) decidePolicy(req *quota.CheckRequest) *quota.CheckResponse {
	n.metrics.degraded.WithLabelValues(req.FailurePolicy.String()).Inc()
	switch req.FailurePolicy {
	case quota.PolicyOpen, quota.PolicyClosed:
		open := req.FailurePolicy == quota.PolicyOpen
		resp := quota.NewCheckResponse(len(req.Limits))
		resp.Allowed, resp.Owner, resp.Degraded = open, n.name, true
		for i, l := range req.Limits {
			r := limiter.Result{Allowed: open, Limit: l.Limit}
			if !open {
				r.RetryAfter = closedRetryAfter
			}
			resp.Limits[i] = quota.LimitStatus{Name: l.Name, Result: r}
		}
		return resp
	}
	// Local: this node's share of each limit, in a store of its own so
	// that degraded counts never mix with, or get handed off as, owned
	// state.
	share := int64(max(n.currentRing().Len(), 1))
	local := *req
	local.Limits = make([]limiter.Limit, len(req.Limits))
	for i, l := range req.Limits {
		l.Limit = max(l.Limit/share, 1)
		if l.Burst > 0 {
			l.Burst = max(l.Burst/share, 1)
		}
		local.Limits[i] = l
	}
	resp, _ := n.decideIn(n.fallback, &local) // nothing is ever sealed in the fallback store
	resp.Degraded = true
	return resp
}
