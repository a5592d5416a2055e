package api

import (
	"context"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// GRPCService returns tollgate.v1.RateLimiter over checks.
func GRPCService(checks Checker) tollgatev1.RateLimiterServer { return &grpcService{node: checks} }

type grpcService struct {
	tollgatev1.UnimplementedRateLimiterServer
	node Checker
}

func (s *grpcService) Check(ctx context.Context, in *tollgatev1.CheckRequest) (*tollgatev1.CheckResponse, error) {
	req, err := quotapb.CheckFromProto("", in)
	if err != nil {
		return nil, quotapb.Status(err)
	}
	resp, err := s.node.Check(ctx, req)
	if err != nil {
		return nil, quotapb.Status(err)
	}
	return quotapb.CheckToProto(resp), nil
}

func (s *grpcService) CheckBatch(ctx context.Context, in *tollgatev1.CheckBatchRequest) (*tollgatev1.CheckBatchResponse, error) {
	if len(in.GetRequests()) > quota.MaxChecksPerBatch {
		return nil, quotapb.Status(quota.Invalid("requests", "at most %d checks per batch, got %d", quota.MaxChecksPerBatch, len(in.GetRequests())))
	}
	reqs := make([]quota.CheckRequest, len(in.GetRequests()))
	for i, r := range in.GetRequests() {
		req, err := quotapb.CheckFromProto(quota.IndexPrefix("requests", i), r)
		if err != nil {
			return nil, quotapb.Status(err)
		}
		reqs[i] = *req
	}
	resps, err := s.node.CheckBatch(ctx, reqs)
	if err != nil {
		return nil, quotapb.Status(err)
	}
	out := &tollgatev1.CheckBatchResponse{Responses: make([]*tollgatev1.CheckResponse, len(resps))}
	for i, r := range resps {
		out.Responses[i] = quotapb.CheckToProto(r)
	}
	return out, nil
}

func (s *grpcService) Release(ctx context.Context, in *tollgatev1.ReleaseRequest) (*tollgatev1.ReleaseResponse, error) {
	l, ferr := quotapb.LimitFromProto(in.GetLimit())
	if ferr != nil {
		return nil, quotapb.Status(ferr.Under("limit"))
	}
	if err := s.node.Release(ctx, &quota.ReleaseRequest{Tenant: in.GetTenant(), Limit: l, Lease: in.GetLeaseId()}); err != nil {
		return nil, quotapb.Status(err)
	}
	return &tollgatev1.ReleaseResponse{}, nil
}
