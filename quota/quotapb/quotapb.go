package quotapb

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/limiter"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
)

// Conversions between the public gRPC API's messages (tollgate.v1, which
// the peer service reuses) and quota's types.

// AlgorithmFromProto and AlgorithmToProto map the wire's algorithms to
// the limiter's; an unspecified one is a token bucket.
var AlgorithmFromProto = map[tollgatev1.Algorithm]limiter.Algorithm{
	tollgatev1.Algorithm_ALGORITHM_UNSPECIFIED:    limiter.TokenBucket,
	tollgatev1.Algorithm_ALGORITHM_TOKEN_BUCKET:   limiter.TokenBucket,
	tollgatev1.Algorithm_ALGORITHM_SLIDING_WINDOW: limiter.SlidingWindow,
	tollgatev1.Algorithm_ALGORITHM_FIXED_WINDOW:   limiter.FixedWindow,
	tollgatev1.Algorithm_ALGORITHM_CONCURRENCY:    limiter.Concurrency,
	tollgatev1.Algorithm_ALGORITHM_CALENDAR_MONTH: limiter.CalendarMonth,
}

var AlgorithmToProto = map[limiter.Algorithm]tollgatev1.Algorithm{
	limiter.TokenBucket:   tollgatev1.Algorithm_ALGORITHM_TOKEN_BUCKET,
	limiter.SlidingWindow: tollgatev1.Algorithm_ALGORITHM_SLIDING_WINDOW,
	limiter.FixedWindow:   tollgatev1.Algorithm_ALGORITHM_FIXED_WINDOW,
	limiter.Concurrency:   tollgatev1.Algorithm_ALGORITHM_CONCURRENCY,
	limiter.CalendarMonth: tollgatev1.Algorithm_ALGORITHM_CALENDAR_MONTH,
}

// CheckFromProto converts and validates a check of the gRPC API; prefix
// is prepended to field names ("requests[3]." in a batch).
func CheckFromProto(prefix string, in *tollgatev1.CheckRequest) (*quota.CheckRequest, error) {
	req := quota.NewCheckRequest(len(in.GetLimits()))
	req.Tenant, req.Hits, req.Tokens, req.Plan = in.GetTenant(), 1, in.GetTokens(), len(in.GetLimits()) == 0
	policy, ok := PolicyFromProto[in.GetFailurePolicy()]
	if !ok {
		return nil, quota.Invalid(prefix+"failure_policy", "unknown failure policy %d", in.GetFailurePolicy())
	}
	req.FailurePolicy = policy
	if in.Hits != nil {
		req.Hits = in.GetHits()
	}
	for i, l := range in.GetLimits() {
		lim, err := LimitFromProto(l)
		if err != nil {
			return nil, err.Under(fmt.Sprintf("%slimits[%d]", prefix, i))
		}
		req.Limits[i] = lim
	}
	return req, req.Validate(prefix)
}

// LimitFromProto converts a limit; an error names the field within it.
func LimitFromProto(in *tollgatev1.Limit) (limiter.Limit, *quota.FieldError) {
	if in == nil {
		return limiter.Limit{}, quota.Invalid("", "is required")
	}
	alg, ok := AlgorithmFromProto[in.GetAlgorithm()]
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
		Algorithm: AlgorithmToProto[l.Algorithm],
		Limit:     l.Limit,
		Period:    durationpb.New(l.Period),
		Burst:     l.Burst,
	}
}

// CheckToProto converts an answer for clients of the gRPC API.
func CheckToProto(resp *quota.CheckResponse) *tollgatev1.CheckResponse {
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

// PolicyFromProto and PolicyToProto map the wire's failure policies to
// ours; an unspecified one is local.
var PolicyFromProto = map[tollgatev1.FailurePolicy]quota.FailurePolicy{
	tollgatev1.FailurePolicy_FAILURE_POLICY_UNSPECIFIED: quota.PolicyLocal,
	tollgatev1.FailurePolicy_FAILURE_POLICY_LOCAL:       quota.PolicyLocal,
	tollgatev1.FailurePolicy_FAILURE_POLICY_OPEN:        quota.PolicyOpen,
	tollgatev1.FailurePolicy_FAILURE_POLICY_CLOSED:      quota.PolicyClosed,
}

var PolicyToProto = map[quota.FailurePolicy]tollgatev1.FailurePolicy{
	quota.PolicyLocal:  tollgatev1.FailurePolicy_FAILURE_POLICY_LOCAL,
	quota.PolicyOpen:   tollgatev1.FailurePolicy_FAILURE_POLICY_OPEN,
	quota.PolicyClosed: tollgatev1.FailurePolicy_FAILURE_POLICY_CLOSED,
}

// Status turns an error of the cluster into a gRPC status error with the
// code its sentinel calls for; an error that is a status already passes as
// it is, and one of no known kind is Internal, with no details shown.
func Status(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, quota.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, quota.ErrUnknownTenant):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, quota.ErrTenantSuspended):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, quota.ErrOwnerUnavailable), errors.Is(err, quota.ErrNotReady), errors.Is(err, quota.ErrNoQuorum), errors.Is(err, quota.ErrNoRaft):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, quota.ErrOverloaded):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, "internal error")
}
