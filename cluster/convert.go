package cluster

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
)

// Conversions between the wire types and ours.

var algorithmFromProto = map[tollgatev1.Algorithm]limiter.Algorithm{
	tollgatev1.Algorithm_ALGORITHM_UNSPECIFIED:    limiter.TokenBucket,
	tollgatev1.Algorithm_ALGORITHM_TOKEN_BUCKET:   limiter.TokenBucket,
	tollgatev1.Algorithm_ALGORITHM_SLIDING_WINDOW: limiter.SlidingWindow,
	tollgatev1.Algorithm_ALGORITHM_FIXED_WINDOW:   limiter.FixedWindow,
	tollgatev1.Algorithm_ALGORITHM_CONCURRENCY:    limiter.Concurrency,
	tollgatev1.Algorithm_ALGORITHM_CALENDAR_MONTH: limiter.CalendarMonth,
}

var algorithmToProto = map[limiter.Algorithm]tollgatev1.Algorithm{
	limiter.TokenBucket:   tollgatev1.Algorithm_ALGORITHM_TOKEN_BUCKET,
	limiter.SlidingWindow: tollgatev1.Algorithm_ALGORITHM_SLIDING_WINDOW,
	limiter.FixedWindow:   tollgatev1.Algorithm_ALGORITHM_FIXED_WINDOW,
	limiter.Concurrency:   tollgatev1.Algorithm_ALGORITHM_CONCURRENCY,
	limiter.CalendarMonth: tollgatev1.Algorithm_ALGORITHM_CALENDAR_MONTH,
}

func checkFromProto(prefix string, in *tollgatev1.CheckRequest) (*quota.CheckRequest, error) {
	req := &quota.CheckRequest{Tenant: in.GetTenant(), Hits: 1, Tokens: in.GetTokens(), Plan: len(in.GetLimits()) == 0, Limits: make([]limiter.Limit, len(in.GetLimits()))}
	policy, ok := policyFromProto[in.GetFailurePolicy()]
	if !ok {
		return nil, quota.Invalid(prefix+"failure_policy", "unknown failure policy %d", in.GetFailurePolicy())
	}
	req.FailurePolicy = policy
	if in.Hits != nil {
		req.Hits = in.GetHits()
	}
	for i, l := range in.GetLimits() {
		lim, err := limitFromProto(l)
		if err != nil {
			return nil, err.Under(fmt.Sprintf("%slimits[%d]", prefix, i))
		}
		req.Limits[i] = lim
	}
	return req, req.Validate(prefix)
}

// limitFromProto converts a limit; an error names the field within it.
func limitFromProto(in *tollgatev1.Limit) (limiter.Limit, *quota.FieldError) {
	if in == nil {
		return limiter.Limit{}, quota.Invalid("", "is required")
	}
	alg, ok := algorithmFromProto[in.GetAlgorithm()]
	if !ok {
		return limiter.Limit{}, quota.Invalid("algorithm", "unknown algorithm %d", in.GetAlgorithm())
	}
	l := limiter.Limit{Name: in.GetName(), Algorithm: alg, Limit: in.GetLimit(), Burst: in.GetBurst()}
	if p := in.GetPeriod(); p != nil {
		if err := p.CheckValid(); err != nil {
			return limiter.Limit{}, quota.Invalid("period", "%v", err)
		}
		l.Period = p.AsDuration()
	}
	return l, nil
}

// LimitToProto converts a limit for clients of the gRPC API.
func LimitToProto(l limiter.Limit) *tollgatev1.Limit {
	return &tollgatev1.Limit{
		Name:      l.Name,
		Algorithm: algorithmToProto[l.Algorithm],
		Limit:     l.Limit,
		Period:    durationpb.New(l.Period),
		Burst:     l.Burst,
	}
}

func checkToProto(resp *quota.CheckResponse) *tollgatev1.CheckResponse {
	out := &tollgatev1.CheckResponse{Allowed: resp.Allowed, Owner: resp.Owner, Degraded: resp.Degraded, Limits: make([]*tollgatev1.LimitStatus, len(resp.Limits))}
	for i, l := range resp.Limits {
		out.Limits[i] = &tollgatev1.LimitStatus{
			Name:       l.Name,
			Allowed:    l.Allowed,
			Limit:      l.Limit,
			Remaining:  l.Remaining,
			ResetAfter: durationpb.New(l.ResetAfter),
			RetryAfter: durationpb.New(l.RetryAfter),
			LeaseId:    l.Lease,
		}
	}
	return out
}

var policyFromProto = map[tollgatev1.FailurePolicy]quota.FailurePolicy{
	tollgatev1.FailurePolicy_FAILURE_POLICY_UNSPECIFIED: quota.PolicyLocal,
	tollgatev1.FailurePolicy_FAILURE_POLICY_LOCAL:       quota.PolicyLocal,
	tollgatev1.FailurePolicy_FAILURE_POLICY_OPEN:        quota.PolicyOpen,
	tollgatev1.FailurePolicy_FAILURE_POLICY_CLOSED:      quota.PolicyClosed,
}

var policyToProto = map[quota.FailurePolicy]tollgatev1.FailurePolicy{
	quota.PolicyLocal:  tollgatev1.FailurePolicy_FAILURE_POLICY_LOCAL,
	quota.PolicyOpen:   tollgatev1.FailurePolicy_FAILURE_POLICY_OPEN,
	quota.PolicyClosed: tollgatev1.FailurePolicy_FAILURE_POLICY_CLOSED,
}

// setForwardedCheck flattens a validated request for the peer hop into
// dst, reusing its limit messages; the hop fields are the caller's to set.
func setForwardedCheck(dst *peerv1.ForwardedCheck, req *quota.CheckRequest) {
	dst.Tenant, dst.Hits, dst.Plan, dst.Reserve, dst.Tokens = req.Tenant, req.Hits, req.Plan, req.Reserve, req.Tokens
	dst.FailurePolicy = policyToProto[req.FailurePolicy]
	dst.TimeoutNanos, dst.Hops, dst.PullFrom = 0, 0, ""
	dst.Limits = setPeerLimits(dst.Limits, req.Limits)
}

// setPeerLimits flattens limits for the peer hop into dst's messages (new
// ones where it has too few) and returns them.
func setPeerLimits(dst []*peerv1.PeerLimit, limits []limiter.Limit) []*peerv1.PeerLimit {
	dst = grow(dst, len(limits))
	for i, l := range limits {
		pl := dst[i]
		pl.Name, pl.Algorithm, pl.Limit, pl.PeriodNanos, pl.Burst = l.Name, algorithmToProto[l.Algorithm], l.Limit, int64(l.Period), l.Burst
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

// limitsFromPeer rebuilds limits from the peer hop; the caller validates
// them.
func limitsFromPeer(in []*peerv1.PeerLimit) ([]limiter.Limit, error) {
	out := make([]limiter.Limit, len(in))
	for i, l := range in {
		alg, ok := algorithmFromProto[l.GetAlgorithm()]
		if !ok {
			return nil, quota.Invalid(fmt.Sprintf("limits[%d].algorithm", i), "unknown algorithm %d", l.GetAlgorithm())
		}
		out[i] = limiter.Limit{Name: l.GetName(), Algorithm: alg, Limit: l.GetLimit(), Period: time.Duration(l.GetPeriodNanos()), Burst: l.GetBurst()}
	}
	return out, nil
}

// checkFromForwarded rebuilds and validates a forwarded request: a peer is
// trusted no more than a client.
func checkFromForwarded(in *peerv1.ForwardedCheck) (*quota.CheckRequest, error) {
	policy, ok := policyFromProto[in.GetFailurePolicy()]
	if !ok {
		return nil, quota.Invalid("failure_policy", "unknown failure policy %d", in.GetFailurePolicy())
	}
	limits, err := limitsFromPeer(in.GetLimits())
	if err != nil {
		return nil, err
	}
	req := &quota.CheckRequest{Tenant: in.GetTenant(), Hits: in.GetHits(), Plan: in.GetPlan(), Reserve: in.GetReserve(), Tokens: in.GetTokens(), FailurePolicy: policy, Limits: limits}
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
	out := &quota.CheckResponse{Allowed: r.GetAllowed(), Owner: r.GetOwner(), Degraded: r.GetDegraded(), Limits: make([]quota.LimitStatus, len(r.GetLimits()))}
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

func tenantStateToProto(tenant string, states []limiter.EntryState) *peerv1.TenantState {
	out := &peerv1.TenantState{Tenant: tenant, Entries: make([]*peerv1.EntryState, len(states))}
	for i, s := range states {
		e := &peerv1.EntryState{
			Limit: LimitToProto(s.Limit), LevelHi: s.LevelHi, LevelLo: s.LevelLo, LastUnixNano: s.Last,
			Window: s.Window, Current: s.Current, Previous: s.Previous,
		}
		for _, l := range s.Leases {
			e.Leases = append(e.Leases, &peerv1.Lease{Id: l.ID, Hits: l.Hits, ExpiresUnixNano: l.Expires})
		}
		out.Entries[i] = e
	}
	return out
}

func tenantStateFromProto(in *peerv1.TenantState) ([]limiter.EntryState, error) {
	out := make([]limiter.EntryState, len(in.GetEntries()))
	for i, e := range in.GetEntries() {
		l, err := limitFromProto(e.GetLimit())
		if err != nil {
			return nil, err.Under(fmt.Sprintf("entries[%d].limit", i))
		}
		s := limiter.EntryState{Limit: l, LevelHi: e.GetLevelHi(), LevelLo: e.GetLevelLo(), Last: e.GetLastUnixNano(),
			Window: e.GetWindow(), Current: e.GetCurrent(), Previous: e.GetPrevious()}
		for _, le := range e.GetLeases() {
			s.Leases = append(s.Leases, limiter.LeaseState{ID: le.GetId(), Hits: le.GetHits(), Expires: le.GetExpiresUnixNano()})
		}
		out[i] = s
	}
	return out, nil
}
