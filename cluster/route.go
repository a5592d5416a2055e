package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/limiter"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// How a check finds its decision: validated once, decided here if this
// node owns the tenant, else forwarded to the owner (at most maxHops
// times), and decided by the failure policy when the owner cannot answer.

// maxHops bounds how often one check is forwarded: once to the owner the
// caller's node sees, once more if that node has handed the tenant on.
const maxHops = 2

// Check decides a request, here or on the tenant's owner. Invalid requests
// return an error wrapping ErrInvalidArgument and change nothing.
func (n *Node) Check(ctx context.Context, req *quota.CheckRequest) (*quota.CheckResponse, error) {
	if err := req.Validate(""); err != nil {
		return nil, err
	}
	return n.checkValid(ctx, req)
}

// checkValid is Check for a request already validated.
func (n *Node) checkValid(ctx context.Context, req *quota.CheckRequest) (*quota.CheckResponse, error) {
	start := time.Now()
	if req.Plan && len(req.Limits) == 0 {
		if err := n.resolvePlan(req); err != nil {
			return nil, err
		}
	}
	resp, err := n.route(ctx, req, 0, "", "")
	if resp == nil && err == nil {
		err = errNoAnswer
	}
	if err == nil {
		n.metrics.observeCheck(resp.Allowed, time.Since(start))
		n.throttled.observe(req.Tenant, resp)
	}
	return resp, err
}

// CheckBatch decides several independent requests. The whole batch is
// validated first, so an invalid one changes nothing.
func (n *Node) CheckBatch(ctx context.Context, reqs []quota.CheckRequest) ([]*quota.CheckResponse, error) {
	if len(reqs) > quota.MaxChecksPerBatch {
		return nil, quota.Invalid("requests", "at most %d checks per batch, got %d", quota.MaxChecksPerBatch, len(reqs))
	}
	for i := range reqs {
		if err := reqs[i].Validate(quota.IndexPrefix("requests", i)); err != nil {
			return nil, err
		}
	}
	out := make([]*quota.CheckResponse, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { out[i], errs[i] = n.checkValid(ctx, &reqs[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// route decides req here if this node owns the tenant, else asks the
// owner, falling back to the failure policy when the owner cannot answer.
// For a forwarded check, from names the node that sent it, and pullFrom a
// node that is handing the tenant to this one.
func (n *Node) route(ctx context.Context, req *quota.CheckRequest, hops uint32, from, pullFrom string) (*quota.CheckResponse, error) {
	ring := n.currentRing()
	owner := ring.Owner(req.Tenant)
	// A leaving node decides nothing: what it held is on its way to the
	// owners, and state it took in now could miss its hand-off. It passes
	// checks on, one hop more than others may if need be.
	leaving := n.leaving.Load()
	switch {
	case owner == "":
		// Joining and not yet in touch with the owners, or the last
		// node leaving: deciding here would start tenants afresh.
		return nil, quota.ErrNotReady
	case leaving && owner == from:
		// The sender owns it and its ring is behind: it decides, and
		// pulls from here what is still here.
		return nil, errHandedToYou
	case leaving && hops > maxHops:
		return nil, fmt.Errorf("%w: %s is leaving and the check for %s has been passed on %d times already", quota.ErrOwnerUnavailable, n.name, req.Tenant, hops)
	case owner == pullFrom && !leaving:
		// The node our ring names is handing the tenant to us: our ring
		// is behind, and sending the check back would bounce. (A node
		// that hands a tenant on, or is leaving, always says so.)
		owner = n.name
	}
	if !leaving && (owner == n.name || hops >= maxHops) {
		resp, to, err := n.decideHere(ctx, req, pullFrom)
		switch {
		case to == "" || err != nil:
			return resp, err
		case to == from:
			// The sender has the state already; its ring is behind.
			return nil, errHandedToYou
		case hops >= maxHops:
			return nil, fmt.Errorf("%w: %s was handed to %s", quota.ErrOwnerUnavailable, req.Tenant, to)
		}
		owner = to
	}
	handing := ""
	if _, ok := n.handoff.movedTo(req.Tenant); ok || leaving {
		handing = n.name // the owner should take the state from here first
	}
	resp, err := n.fwd.Forward(ctx, owner, req, hops+1, handing)
	switch {
	case err == nil:
		return resp, nil
	case isHandedToYou(err) && leaving:
		return nil, fmt.Errorf("%w: %s is leaving and %s says it handed %s here", quota.ErrOwnerUnavailable, n.name, owner, req.Tenant)
	case isHandedToYou(err):
		resp, to, err := n.decideHere(ctx, req, owner)
		if to == owner && n.handoff.takeBack(ctx, req.Tenant, owner) {
			resp, to, err = n.decideHere(ctx, req, owner)
		}
		if to != "" {
			// Both sides say the other has it: neither decides rather
			// than start it afresh.
			return nil, fmt.Errorf("%w: %s and %s each hold %s as handed to the other", quota.ErrOwnerUnavailable, n.name, owner, req.Tenant)
		}
		return resp, err
	case ctx.Err() != nil:
		return nil, ctx.Err() // the caller has gone; nobody reads an answer
	case n.ctx.Err() != nil:
		return nil, quota.ErrNotReady // this node is stopping: the owner is fine
	case status.Code(err) == codes.InvalidArgument:
		return nil, err
	case status.Code(err) == codes.ResourceExhausted:
		// The owner is fine but full (of leases): deciding here instead
		// would hand out what it refuses.
		return nil, fmt.Errorf("%w: on %s: %s", quota.ErrOverloaded, owner, status.Convert(err).Message())
	case n.currentRing() != ring:
		// The owner was chosen by a ring that has changed since (a node
		// left or died meanwhile): route once more by the new one.
		return n.route(ctx, req, hops, from, pullFrom)
	}
	n.log.Debug("owner unreachable; failure policy decides", "owner", owner, "tenant", req.Tenant, "policy", req.FailurePolicy, "err", err)
	return n.decideDegraded(req), nil
}

// decideHere decides req in this node's store once any state in flight has
// arrived. If the tenant has been handed to a live node meanwhile, it
// returns that node's name instead.
func (n *Node) decideHere(ctx context.Context, req *quota.CheckRequest, pullFrom string) (*quota.CheckResponse, string, error) {
	if err := n.handoff.settle(ctx, req.Tenant, pullFrom); err != nil {
		return nil, "", err
	}
	if n.repl != nil {
		n.repl.promoteOnCheck(req.Tenant)
	}
	resp, err := n.decideOwned(req)
	if !errors.Is(err, limiter.ErrMoved) {
		return resp, "", err
	}
	if to, ok := n.handoff.movedTo(req.Tenant); ok && n.peers.Has(to) {
		return nil, to, nil
	}
	// Its new owner has gone before taking it. If the tenant is ours by
	// the ring, take back what was handed off and decide here; if not,
	// starting it here would make a second copy.
	if !n.handoff.reclaim(req.Tenant) {
		return nil, "", fmt.Errorf("%w: %s is owned by %s", quota.ErrOwnerUnavailable, req.Tenant, n.currentRing().Owner(req.Tenant))
	}
	resp, err = n.decideOwned(req)
	if resp == nil && err == nil {
		err = fmt.Errorf("%w: %s moved away again", quota.ErrOwnerUnavailable, req.Tenant)
	}
	return resp, "", err
}

// Release ends a concurrency lease early, on the tenant's owner. Releasing
// an unknown or expired lease is not an error.
func (n *Node) Release(ctx context.Context, req *quota.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if req.Limit.Algorithm != limiter.Concurrency {
		return quota.Invalid("limit.algorithm", "only concurrency limits hold leases, got %s", req.Limit.Algorithm)
	}
	return n.release(ctx, req, false)
}

// release runs on the owner; a node that is not the owner, or has just
// handed the tenant on, passes it on once (a lease left behind by a race
// expires with its TTL).
func (n *Node) release(ctx context.Context, req *quota.ReleaseRequest, forwarded bool) error {
	owner := n.Owner(req.Tenant)
	if owner == "" {
		return quota.ErrNotReady
	}
	if owner == n.name || forwarded {
		if n.repl != nil {
			n.repl.promoteOnCheck(req.Tenant)
		}
		err := n.store.Adjust(req.Tenant, []limiter.Adjustment{{Limit: req.Limit, Lease: req.Lease}})
		to, moved := n.handoff.movedTo(req.Tenant)
		if !errors.Is(err, limiter.ErrMoved) || !moved || forwarded {
			return nil
		}
		owner = to
	}
	client, err := n.peers.Client(owner)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, n.fwd.Config().Timeout)
		defer cancel()
		_, err = client.Release(ctx, &tollgatev1.ReleaseRequest{Tenant: req.Tenant, Limit: quotapb.LimitToProto(req.Limit), LeaseId: req.Lease})
	}
	if err != nil {
		return fmt.Errorf("%w: releasing on %s: %v", quota.ErrOwnerUnavailable, owner, err)
	}
	return nil
}

// errHandedToYou answers a forwarded check whose tenant this node has
// handed to the sender: the sender decides it itself.
var errHandedToYou = status.Error(codes.FailedPrecondition, handedToYou)

const handedToYou = "tenant handed to the sender"

func isHandedToYou(err error) bool {
	st, ok := status.FromError(err) // unwraps
	return ok && st.Code() == codes.FailedPrecondition && strings.HasSuffix(st.Message(), handedToYou)
}

// errNoAnswer guards against a route that ends with neither an answer nor
// an error.
var errNoAnswer = errors.New("internal: check routed to no decision")
