package cluster

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/limiter"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// GRPCService returns the node's tollgate.v1.RateLimiter implementation.
func (n *Node) GRPCService() tollgatev1.RateLimiterServer { return &grpcService{node: n} }

type grpcService struct {
	tollgatev1.UnimplementedRateLimiterServer
	node *Node
}

func (s *grpcService) Check(ctx context.Context, in *tollgatev1.CheckRequest) (*tollgatev1.CheckResponse, error) {
	req, err := checkFromProto("", in)
	if err != nil {
		return nil, grpcError(err)
	}
	resp, err := s.node.Check(ctx, req)
	if err != nil {
		return nil, grpcError(err)
	}
	return checkToProto(resp), nil
}

func (s *grpcService) CheckBatch(ctx context.Context, in *tollgatev1.CheckBatchRequest) (*tollgatev1.CheckBatchResponse, error) {
	if len(in.GetRequests()) > MaxChecksPerBatch {
		return nil, grpcError(fieldErr("requests", "at most %d checks per batch, got %d", MaxChecksPerBatch, len(in.GetRequests())))
	}
	reqs := make([]CheckRequest, len(in.GetRequests()))
	for i, r := range in.GetRequests() {
		req, err := checkFromProto(indexPrefix("requests", i), r)
		if err != nil {
			return nil, grpcError(err)
		}
		reqs[i] = *req
	}
	resps, err := s.node.CheckBatch(ctx, reqs)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &tollgatev1.CheckBatchResponse{Responses: make([]*tollgatev1.CheckResponse, len(resps))}
	for i, r := range resps {
		out.Responses[i] = checkToProto(r)
	}
	return out, nil
}

func (s *grpcService) Release(ctx context.Context, in *tollgatev1.ReleaseRequest) (*tollgatev1.ReleaseResponse, error) {
	l, err := limitFromProto("limit", in.GetLimit())
	if err != nil {
		return nil, grpcError(err)
	}
	if err := s.node.Release(ctx, &ReleaseRequest{Tenant: in.GetTenant(), Limit: l, Lease: in.GetLeaseId()}); err != nil {
		return nil, grpcError(err)
	}
	return &tollgatev1.ReleaseResponse{}, nil
}

func grpcError(err error) error {
	if errors.Is(err, ErrInvalidArgument) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, "internal error")
}

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
	if in.Hits != nil {
		req.Hits = in.GetHits()
	}
	for i, l := range in.GetLimits() {
		lim, err := limitFromProto(fmt.Sprintf("%slimits[%d]", prefix, i), l)
		if err != nil {
			return nil, err
		}
		req.Limits[i] = lim
	}
	return req, req.Validate(prefix)
}

func limitFromProto(field string, in *tollgatev1.Limit) (limiter.Limit, error) {
	if in == nil {
		return limiter.Limit{}, fieldErr(field, "is required")
	}
	alg, ok := algorithmFromProto[in.GetAlgorithm()]
	if !ok {
		return limiter.Limit{}, fieldErr(field+".algorithm", "unknown algorithm %d", in.GetAlgorithm())
	}
	l := limiter.Limit{Name: in.GetName(), Algorithm: alg, Limit: in.GetLimit(), Burst: in.GetBurst()}
	if p := in.GetPeriod(); p != nil {
		if err := p.CheckValid(); err != nil {
			return limiter.Limit{}, fieldErr(field+".period", "%v", err)
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
	out := &tollgatev1.CheckResponse{Allowed: resp.Allowed, Owner: resp.Owner, Limits: make([]*tollgatev1.LimitStatus, len(resp.Limits))}
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
