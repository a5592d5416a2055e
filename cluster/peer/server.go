package peer

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// Local is what the peer service asks of the node it runs on. Its errors
// are the cluster's sentinels or gRPC status errors.
type Local interface {
	// Route decides a forwarded check here or passes it on; from names
	// the sender, pullFrom a node that is handing the tenant to this one.
	Route(ctx context.Context, req *quota.CheckRequest, hops uint32, from, pullFrom string) (*quota.CheckResponse, error)
	// Settle validates and applies settlements sent by the nodes that
	// served the requests, each once.
	Settle(ctx context.Context, in *peerv1.SettleRequest) error
	// Receive takes tenant state handed to this node.
	Receive(in *peerv1.HandoffRequest) error
	// Give answers a pull: the state of tenants that from is taking over.
	Give(from string, tenants []string) *peerv1.PullResponse
	// Replicate holds the copies of tenant state their owner sent (those
	// that are valid).
	Replicate(in *peerv1.ReplicateRequest)
	// Release ends a lease here, passed on by a node that is not the
	// tenant's owner.
	Release(ctx context.Context, req *quota.ReleaseRequest) error
	// Apply commits a configuration command; this node must lead Raft.
	Apply(ctx context.Context, in *peerv1.ApplyRequest) (*peerv1.ApplyResponse, error)
	// Depart removes a member that is leaving from Raft; this node must
	// lead Raft.
	Depart(ctx context.Context, from string) error
}

// NewServer returns the node-to-node gRPC service over local.
func NewServer(local Local) peerv1.PeerServer { return &server{local: local} }

type server struct {
	peerv1.UnimplementedPeerServer
	local Local
}

// CheckBatch decides forwarded checks in order.
func (s *server) CheckBatch(ctx context.Context, in *peerv1.CheckBatchRequest) (*peerv1.CheckBatchResponse, error) {
	out := &peerv1.CheckBatchResponse{}
	s.decideBatch(ctx, in, out)
	return out, nil
}

// CheckStream answers batches sent on one stream, in order, until the
// sender closes it. One answer message serves every batch in turn: Send
// has written it before the next batch is decided (which would not hold
// with a gRPC stats handler that reads messages later; the server has none).
func (s *server) CheckStream(stream peerv1.Peer_CheckStreamServer) error {
	out := &peerv1.CheckBatchResponse{}
	for {
		in, err := stream.Recv()
		if status.Code(err) == codes.PermissionDenied {
			return err // a sender that is not who it says: tell it
		}
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
func (s *server) decideBatch(ctx context.Context, in *peerv1.CheckBatchRequest, out *peerv1.CheckBatchResponse) {
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

func (s *server) decide(ctx context.Context, from string, received time.Time, fc *peerv1.ForwardedCheck, out *peerv1.CheckResult) {
	if time.Since(received) >= time.Duration(fc.GetTimeoutNanos()) || ctx.Err() != nil {
		setFailedResult(out, codes.DeadlineExceeded, "deadline passed before the owner got to it")
		return
	}
	req, err := checkFromForwarded(fc)
	var resp *quota.CheckResponse
	if err == nil {
		resp, err = s.local.Route(ctx, req, fc.GetHops(), from, fc.GetPullFrom())
	}
	if err != nil {
		st := status.Convert(quotapb.Status(err))
		setFailedResult(out, st.Code(), st.Message())
		return
	}
	setCheckResult(out, resp)
}

// Settle applies settlements sent by the nodes that served the requests.
func (s *server) Settle(ctx context.Context, in *peerv1.SettleRequest) (*peerv1.SettleResponse, error) {
	if err := s.local.Settle(ctx, in); err != nil {
		return nil, quotapb.Status(err)
	}
	return &peerv1.SettleResponse{}, nil
}

// Handoff takes tenant state another node hands to this one.
func (s *server) Handoff(_ context.Context, in *peerv1.HandoffRequest) (*peerv1.HandoffResponse, error) {
	if err := s.local.Receive(in); err != nil {
		if errors.Is(err, quota.ErrNotReady) {
			return nil, quotapb.Status(err) // leaving: the sender tries the next owner
		}
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &peerv1.HandoffResponse{}, nil
}

// Release ends a lease on the tenant's owner.
func (s *server) Release(ctx context.Context, in *tollgatev1.ReleaseRequest) (*tollgatev1.ReleaseResponse, error) {
	l, ferr := quotapb.LimitFromProto(in.GetLimit())
	if ferr != nil {
		return nil, quotapb.Status(ferr.Under("limit"))
	}
	req := &quota.ReleaseRequest{Tenant: in.GetTenant(), Limit: l, Lease: in.GetLeaseId()}
	if err := req.Validate(); err != nil {
		return nil, quotapb.Status(err)
	}
	if err := s.local.Release(ctx, req); err != nil {
		return nil, quotapb.Status(err)
	}
	return &tollgatev1.ReleaseResponse{}, nil
}

// Pull hands the caller the state of the tenants it is taking over.
func (s *server) Pull(_ context.Context, in *peerv1.PullRequest) (*peerv1.PullResponse, error) {
	if in.GetFrom() == "" {
		return nil, status.Error(codes.InvalidArgument, "from: required")
	}
	return s.local.Give(in.GetFrom(), in.GetTenants()), nil
}

// Replicate holds copies of the state of tenants the sender owns.
func (s *server) Replicate(_ context.Context, in *peerv1.ReplicateRequest) (*peerv1.ReplicateResponse, error) {
	if in.GetFrom() == "" {
		return nil, status.Error(codes.InvalidArgument, "from: required")
	}
	s.local.Replicate(in)
	return &peerv1.ReplicateResponse{}, nil
}

// Apply is the leader's side of a configuration write sent by another
// node.
func (s *server) Apply(ctx context.Context, in *peerv1.ApplyRequest) (*peerv1.ApplyResponse, error) {
	return s.local.Apply(ctx, in)
}

// Depart removes a member that is leaving gracefully from Raft, on the
// leader. Removing a member that is not there is not an error.
func (s *server) Depart(ctx context.Context, in *peerv1.DepartRequest) (*peerv1.DepartResponse, error) {
	if in.GetFrom() == "" {
		return nil, status.Error(codes.InvalidArgument, "from: required")
	}
	if err := s.local.Depart(ctx, in.GetFrom()); err != nil {
		return nil, err
	}
	return &peerv1.DepartResponse{}, nil
}

// GracefulStop drains a gRPC server, cutting it off at ctx's deadline:
// the peer streams other nodes keep open would otherwise hold it for good.
func GracefulStop(ctx context.Context, s *grpc.Server) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
		<-done
	}
}
