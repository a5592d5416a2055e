package cluster

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
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
	if len(in.GetRequests()) > quota.MaxChecksPerBatch {
		return nil, grpcError(quota.Invalid("requests", "at most %d checks per batch, got %d", quota.MaxChecksPerBatch, len(in.GetRequests())))
	}
	reqs := make([]quota.CheckRequest, len(in.GetRequests()))
	for i, r := range in.GetRequests() {
		req, err := checkFromProto(quota.IndexPrefix("requests", i), r)
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
	l, ferr := limitFromProto(in.GetLimit())
	if ferr != nil {
		return nil, grpcError(ferr.Under("limit"))
	}
	if err := s.node.Release(ctx, &quota.ReleaseRequest{Tenant: in.GetTenant(), Limit: l, Lease: in.GetLeaseId()}); err != nil {
		return nil, grpcError(err)
	}
	return &tollgatev1.ReleaseResponse{}, nil
}

func grpcError(err error) error {
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
	case errors.Is(err, ErrOwnerUnavailable), errors.Is(err, ErrNotReady), errors.Is(err, ErrNoQuorum), errors.Is(err, ErrNoRaft):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, "internal error")
}
