package cluster

import (
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
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

func checkFromProto(prefix string, in *tollgatev1.CheckRequest) (*CheckRequest, error) {
	req := &CheckRequest{Tenant: in.GetTenant(), Hits: 1, Limits: make([]limiter.Limit, len(in.GetLimits()))}
	policy, ok := policyFromProto[in.GetFailurePolicy()]
	if !ok {
		return nil, fieldErr(prefix+"failure_policy", "unknown failure policy %d", in.GetFailurePolicy())
	}
	req.FailurePolicy = policy
	if in.Hits != nil {
		req.Hits = in.GetHits()
	}
	for i, l := range in.GetLimits() {
		lim, err := limitFromProto(l)
		if err != nil {
			return nil, err.under(fmt.Sprintf("%slimits[%d]", prefix, i))
		}
		req.Limits[i] = lim
	}
	return req, req.Validate(prefix)
}

// limitFromProto converts a limit; an error names the field within it.
func limitFromProto(in *tollgatev1.Limit) (limiter.Limit, *FieldError) {
	if in == nil {
		return limiter.Limit{}, fieldErr("", "is required")
	}
	alg, ok := algorithmFromProto[in.GetAlgorithm()]
	if !ok {
		return limiter.Limit{}, fieldErr("algorithm", "unknown algorithm %d", in.GetAlgorithm())
	}
	l := limiter.Limit{Name: in.GetName(), Algorithm: alg, Limit: in.GetLimit(), Burst: in.GetBurst()}
	if p := in.GetPeriod(); p != nil {
		if err := p.CheckValid(); err != nil {
			return limiter.Limit{}, fieldErr("period", "%v", err)
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

func checkToProto(resp *CheckResponse) *tollgatev1.CheckResponse {
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

var policyFromProto = map[tollgatev1.FailurePolicy]FailurePolicy{
	tollgatev1.FailurePolicy_FAILURE_POLICY_UNSPECIFIED: PolicyLocal,
	tollgatev1.FailurePolicy_FAILURE_POLICY_LOCAL:       PolicyLocal,
	tollgatev1.FailurePolicy_FAILURE_POLICY_OPEN:        PolicyOpen,
	tollgatev1.FailurePolicy_FAILURE_POLICY_CLOSED:      PolicyClosed,
}

var policyToProto = map[FailurePolicy]tollgatev1.FailurePolicy{
	PolicyLocal:  tollgatev1.FailurePolicy_FAILURE_POLICY_LOCAL,
	PolicyOpen:   tollgatev1.FailurePolicy_FAILURE_POLICY_OPEN,
	PolicyClosed: tollgatev1.FailurePolicy_FAILURE_POLICY_CLOSED,
}

// checkRequestToProto is for forwarding a validated request.
func checkRequestToProto(req *CheckRequest) *tollgatev1.CheckRequest {
	out := &tollgatev1.CheckRequest{Tenant: req.Tenant, Hits: &req.Hits, FailurePolicy: policyToProto[req.FailurePolicy],
		Limits: make([]*tollgatev1.Limit, len(req.Limits))}
	for i, l := range req.Limits {
		out.Limits[i] = LimitToProto(l)
	}
	return out
}

// checkResponseFromProto is for an owner's answer to a forwarded check.
func checkResponseFromProto(in *tollgatev1.CheckResponse) *CheckResponse {
	out := &CheckResponse{Allowed: in.GetAllowed(), Owner: in.GetOwner(), Degraded: in.GetDegraded(), Limits: make([]LimitStatus, len(in.GetLimits()))}
	for i, l := range in.GetLimits() {
		out.Limits[i] = LimitStatus{Name: l.GetName(), Result: limiter.Result{
			Allowed:    l.GetAllowed(),
			Limit:      l.GetLimit(),
			Remaining:  l.GetRemaining(),
			ResetAfter: l.GetResetAfter().AsDuration(),
			RetryAfter: l.GetRetryAfter().AsDuration(),
			Lease:      l.GetLeaseId(),
		}}
	}
	return out
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
			return nil, err.under(fmt.Sprintf("entries[%d].limit", i))
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
