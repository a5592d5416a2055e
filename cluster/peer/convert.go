package peer

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// Conversions between quota's types and the peer hop's messages, which
// reuse their buffers: a forwarded check allocates as little as it can.

// setForwardedCheck flattens a validated request for the peer hop into
// dst, reusing its limit messages; the hop fields are the caller's to set.
func setForwardedCheck(dst *peerv1.ForwardedCheck, req *quota.CheckRequest) {
	dst.Tenant, dst.Hits, dst.Plan, dst.Reserve, dst.Tokens = req.Tenant, req.Hits, req.Plan, req.Reserve, req.Tokens
	dst.FailurePolicy = quotapb.PolicyToProto[req.FailurePolicy]
	dst.TimeoutNanos, dst.Hops, dst.PullFrom = 0, 0, ""
	dst.Limits = SetPeerLimits(dst.Limits, req.Limits)
}

// SetPeerLimits flattens limits for the peer hop into dst's messages (new
// ones where it has too few) and returns them.
func SetPeerLimits(dst []*peerv1.PeerLimit, limits []limiter.Limit) []*peerv1.PeerLimit {
	dst = grow(dst, len(limits))
	for i, l := range limits {
		pl := dst[i]
		pl.Name, pl.Algorithm, pl.Limit, pl.PeriodNanos, pl.Burst = l.Name, quotapb.AlgorithmToProto[l.Algorithm], l.Limit, int64(l.Period), l.Burst
	}
	return dst
}

// grow returns msgs with length n, keeping the messages it holds (past its
// length too) and adding new ones where there are none.
func grow[M any](msgs []*M, n int) []*M {
	if n <= cap(msgs) {
		msgs = msgs[:n]
	} else {
		msgs = append(msgs[:cap(msgs)], make([]*M, n-cap(msgs))...)
	}
	for i, m := range msgs {
		if m == nil {
			msgs[i] = new(M)
		}
	}
	return msgs
}

// LimitsFromPeer rebuilds limits from the peer hop; the caller validates
// them.
func LimitsFromPeer(in []*peerv1.PeerLimit) ([]limiter.Limit, error) {
	out := make([]limiter.Limit, len(in))
	if err := limitsFromPeer(out, in); err != nil {
		return nil, err
	}
	return out, nil
}

// limitsFromPeer rebuilds in's limits into out, which is as long.
func limitsFromPeer(out []limiter.Limit, in []*peerv1.PeerLimit) error {
	for i, l := range in {
		alg, ok := quotapb.AlgorithmFromProto[l.GetAlgorithm()]
		if !ok {
			return quota.Invalid(fmt.Sprintf("limits[%d].algorithm", i), "unknown algorithm %d", l.GetAlgorithm())
		}
		out[i] = limiter.Limit{Name: l.GetName(), Algorithm: alg, Limit: l.GetLimit(), Period: time.Duration(l.GetPeriodNanos()), Burst: l.GetBurst()}
	}
	return nil
}

// checkFromForwarded rebuilds and validates a forwarded request: a peer is
// trusted no more than a client.
func checkFromForwarded(in *peerv1.ForwardedCheck) (*quota.CheckRequest, error) {
	policy, ok := quotapb.PolicyFromProto[in.GetFailurePolicy()]
	if !ok {
		return nil, quota.Invalid("failure_policy", "unknown failure policy %d", in.GetFailurePolicy())
	}
	req := quota.NewCheckRequest(len(in.GetLimits()))
	if err := limitsFromPeer(req.Limits, in.GetLimits()); err != nil {
		return nil, err
	}
	req.Tenant, req.Hits, req.Plan, req.Reserve = in.GetTenant(), in.GetHits(), in.GetPlan(), in.GetReserve()
	req.Tokens, req.FailurePolicy = in.GetTokens(), policy
	// A plan check arrives with its plan's limits, resolved by the sender
	// (none if every field of the plan is 0).
	return req, req.Validate("")
}

// setCheckResult flattens an owner's decision for the peer hop into dst,
// reusing the messages it holds.
func setCheckResult(dst *peerv1.CheckResult, resp *quota.CheckResponse) {
	dst.Code, dst.Message = 0, ""
	dst.Allowed, dst.Owner, dst.Degraded = resp.Allowed, resp.Owner, resp.Degraded
	dst.Limits = grow(dst.Limits, len(resp.Limits))
	for i, l := range resp.Limits {
		ps := dst.Limits[i]
		ps.Allowed, ps.Limit, ps.Remaining, ps.LeaseId, ps.Window = l.Allowed, l.Limit, l.Remaining, l.Lease, l.Window
		ps.ResetAfterNanos, ps.RetryAfterNanos = int64(l.ResetAfter), int64(l.RetryAfter)
	}
}

// setFailedResult makes dst the answer to a check the owner did not decide.
func setFailedResult(dst *peerv1.CheckResult, code codes.Code, msg string) {
	dst.Code, dst.Message = uint32(code), msg
	dst.Allowed, dst.Owner, dst.Degraded = false, "", false
	dst.Limits = dst.Limits[:0]
}

// responseOf turns an owner's answer to req back into a response.
func responseOf(req *quota.CheckRequest, r *peerv1.CheckResult) (*quota.CheckResponse, error) {
	if r.GetCode() != 0 {
		return nil, status.Error(codes.Code(r.GetCode()), r.GetMessage())
	}
	if len(r.GetLimits()) != len(req.Limits) {
		return nil, status.Errorf(codes.Internal, "owner answered %d limits for %d", len(r.GetLimits()), len(req.Limits))
	}
	out := quota.NewCheckResponse(len(r.GetLimits()))
	out.Allowed, out.Owner, out.Degraded = r.GetAllowed(), r.GetOwner(), r.GetDegraded()
	for i, l := range r.GetLimits() {
		out.Limits[i] = quota.LimitStatus{Name: req.Limits[i].Name, Result: limiter.Result{
			Allowed:    l.GetAllowed(),
			Limit:      l.GetLimit(),
			Remaining:  l.GetRemaining(),
			ResetAfter: time.Duration(l.GetResetAfterNanos()),
			RetryAfter: time.Duration(l.GetRetryAfterNanos()),
			Lease:      l.GetLeaseId(),
			Window:     l.GetWindow(),
		}}
	}
	return out, nil
}
