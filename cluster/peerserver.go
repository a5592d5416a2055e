package cluster

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// PeerService returns the node's side of the node-to-node gRPC service.
func (n *Node) PeerService() peerv1.PeerServer { return &peerService{node: n} }

type peerService struct {
	peerv1.UnimplementedPeerServer
	node *Node
}

// CheckBatch decides forwarded checks in order.
func (s *peerService) CheckBatch(ctx context.Context, in *peerv1.CheckBatchRequest) (*peerv1.CheckBatchResponse, error) {
	out := &peerv1.CheckBatchResponse{}
	s.decideBatch(ctx, in, out)
	return out, nil
}

// CheckStream answers batches sent on one stream, in order, until the
// sender closes it. One answer message serves every batch in turn: Send
// has written it before the next batch is decided (which would not hold
// with a gRPC stats handler that reads messages later; the server has none).
func (s *peerService) CheckStream(stream peerv1.Peer_CheckStreamServer) error {
	out := &peerv1.CheckBatchResponse{}
	for {
		in, err := stream.Recv()
		if err != nil {
			return nil // the sender closed or broke the stream; nothing to answer
		}
		s.decideBatch(stream.Context(), in, out)
		out.Id = in.GetId()
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// decideBatch decides in's checks into out, reusing the result messages out
// holds, under a deadline that is the latest of their callers' (a decision
// here does not wait, except for the rare pull or second hop). A check
// whose own time is up by the time its turn comes is not decided: its
// caller has had an answer already.
func (s *peerService) decideBatch(ctx context.Context, in *peerv1.CheckBatchRequest, out *peerv1.CheckBatchResponse) {
	received := time.Now()
	var latest int64
	for _, fc := range in.GetChecks() {
		latest = max(latest, fc.GetTimeoutNanos())
	}
	ctx, cancel := context.WithDeadline(ctx, received.Add(time.Duration(latest)))
	defer cancel()
	out.Results = grow(out.Results, len(in.GetChecks()))
	for i, fc := range in.GetChecks() {
		s.decide(ctx, in.GetFrom(), received, fc, out.Results[i])
	}
}

func (s *peerService) decide(ctx context.Context, from string, received time.Time, fc *peerv1.ForwardedCheck, out *peerv1.CheckResult) {
	if time.Since(received) >= time.Duration(fc.GetTimeoutNanos()) || ctx.Err() != nil {
		setFailedResult(out, codes.DeadlineExceeded, "deadline passed before the owner got to it")
		return
	}
	req, err := checkFromForwarded(fc)
	var resp *quota.CheckResponse
	if err == nil {
		resp, err = s.node.route(ctx, req, fc.GetHops(), from, fc.GetPullFrom())
		if resp == nil && err == nil {
			err = errNoAnswer
		}
	}
	if err != nil {
		st := status.Convert(quotapb.Status(err))
		setFailedResult(out, st.Code(), st.Message())
		return
	}
	setCheckResult(out, resp)
}

// Settle applies settlements sent by the nodes that served the requests.
// All are validated before any is applied; one applied before (its answer
// was lost and it was resent) is skipped.
func (s *peerService) Settle(ctx context.Context, in *peerv1.SettleRequest) (*peerv1.SettleResponse, error) {
	ss := make([]*settlement, len(in.GetSettlements()))
	for i, p := range in.GetSettlements() {
		st, err := settlementFromProto(p)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "settlements[%d]: %v", i, err)
		}
		ss[i] = st
	}
	now := time.Now()
	for _, st := range ss {
		if s.node.settled.first(settleID{st.origin, st.seq}, now) {
			s.node.settleHere(ctx, st)
		}
	}
	return &peerv1.SettleResponse{}, nil
}

func (s *peerService) Handoff(_ context.Context, in *peerv1.HandoffRequest) (*peerv1.HandoffResponse, error) {
	if err := s.node.handoff.receive(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &peerv1.HandoffResponse{}, nil
}

func (s *peerService) Release(ctx context.Context, in *tollgatev1.ReleaseRequest) (*tollgatev1.ReleaseResponse, error) {
	l, ferr := quotapb.LimitFromProto(in.GetLimit())
	if ferr != nil {
		return nil, quotapb.Status(ferr.Under("limit"))
	}
	req := &quota.ReleaseRequest{Tenant: in.GetTenant(), Limit: l, Lease: in.GetLeaseId()}
	if err := req.Validate(); err != nil {
		return nil, quotapb.Status(err)
	}
	if err := s.node.release(ctx, req, true); err != nil {
		return nil, quotapb.Status(err)
	}
	return &tollgatev1.ReleaseResponse{}, nil
}

func (s *peerService) Pull(_ context.Context, in *peerv1.PullRequest) (*peerv1.PullResponse, error) {
	if in.GetFrom() == "" {
		return nil, status.Error(codes.InvalidArgument, errors.New("from: required").Error())
	}
	return s.node.handoff.give(in.GetFrom(), in.GetTenants()), nil
}
