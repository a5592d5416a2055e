package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/peer"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// PeerService returns the node's side of the node-to-node gRPC service.
func (n *Node) PeerService() peerv1.PeerServer { return peer.NewServer(peerLocal{n}) }

// peerLocal is the node as the peer service sees it (peer.Local): what
// other nodes may ask of it.
type peerLocal struct{ n *Node }

func (l peerLocal) Route(ctx context.Context, req *quota.CheckRequest, hops uint32, from, pullFrom string) (*quota.CheckResponse, error) {
	resp, err := l.n.route(ctx, req, hops, from, pullFrom)
	if resp == nil && err == nil {
		err = errNoAnswer
	}
	return resp, err
}

// Settle validates every settlement before it applies any; one applied
// before (its answer was lost and it was resent) is skipped.
func (l peerLocal) Settle(ctx context.Context, in *peerv1.SettleRequest) error {
	n := l.n
	ss := make([]*settlement, len(in.GetSettlements()))
	for i, p := range in.GetSettlements() {
		st, err := settlementFromProto(p)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "settlements[%d]: %v", i, err)
		}
		if st.hops == 0 && st.origin != in.GetFrom() {
			// A node sends its own settlements first-hand; only one passed
			// on by the node that handed the tenant here names another
			// origin. (Else a node could spend another's sequence numbers,
			// and the real settlements would be dropped as resent.)
			return status.Errorf(codes.PermissionDenied, "settlements[%d].origin: %q, but a settlement not passed on comes from the node that made it, %q", i, st.origin, in.GetFrom())
		}
		ss[i] = st
	}
	now := time.Now()
	for _, st := range ss {
		if n.settled.first(settleID{st.origin, st.seq}, now) {
			n.settleHere(ctx, st)
		}
	}
	return nil
}

func (l peerLocal) Receive(in *peerv1.HandoffRequest) error { return l.n.handoff.receive(in) }

func (l peerLocal) Give(from string, tenants []string) *peerv1.PullResponse {
	return l.n.handoff.give(from, tenants)
}

func (l peerLocal) Replicate(in *peerv1.ReplicateRequest) {
	if l.n.repl != nil { // off here: the copies are dropped
		l.n.repl.receive(in)
	}
}

func (l peerLocal) Release(ctx context.Context, req *quota.ReleaseRequest) error {
	if err := l.n.knownCaller(ctx); err != nil {
		return err
	}
	return l.n.release(ctx, req, true)
}

// knownCaller refuses a peer call (under TLS, where a call says who made
// it) whose certificate names neither a live gossip member nor a server of
// the Raft configuration: the cluster's CA may have signed certificates
// for nodes that have left or never joined, and those speak for nobody.
// (Calls that name their sender are checked against the certificate by
// the peer server already.)
func (n *Node) knownCaller(ctx context.Context) error {
	names, ok := peer.Identity(ctx)
	if !ok {
		return nil
	}
	var r *raft.Raft
	if n.raft != nil {
		r = n.raft.raft
	}
	if slices.ContainsFunc(names, func(name string) bool { return n.peers.Has(name) || configured(r, name) }) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "%s: the certificate names %q, no member of this cluster", notMember, names)
}

// notMember starts the answer to a caller this node does not know (yet):
// a node that has only just joined may meet it before gossip has told the
// other side, and tries again.
const notMember = "caller is no member"

func isNotMember(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.PermissionDenied && strings.HasPrefix(st.Message(), notMember)
}

// Apply is the leader's side of a forwarded write.
func (l peerLocal) Apply(ctx context.Context, in *peerv1.ApplyRequest) (*peerv1.ApplyResponse, error) {
	n := l.n
	if n.raft == nil || !n.raft.isLeader() {
		return nil, status.Error(codes.FailedPrecondition, notLeader)
	}
	if err := n.knownCaller(ctx); err != nil {
		return nil, err
	}
	var cmd configv1.Command
	if err := proto.Unmarshal(in.GetCommand(), &cmd); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "command: %v", err)
	}
	if u := cmd.GetRecordUsage(); u != nil {
		// A node writes its own usage only (under TLS, where a call says
		// who made it).
		if ids, ok := peer.Identity(ctx); ok && !slices.Contains(ids, u.GetNode()) {
			return nil, status.Errorf(codes.PermissionDenied, "record_usage.node: %q is not the node this certificate names", u.GetNode())
		}
	}
	if !config.KnownCommand(&cmd) {
		// Written to the log, it would stop every replica that reads it.
		return nil, status.Error(codes.InvalidArgument, "command: no operation this node knows")
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	res, index, err := n.applyLocal(ctx, in.GetCommand())
	switch {
	case errors.Is(err, errRetryApply):
		return nil, status.Error(codes.FailedPrecondition, notLeader)
	case err != nil:
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &peerv1.ApplyResponse{Result: res, Index: index}, nil
}

// Depart removes a member that is leaving gracefully from Raft, on the
// leader. Removing a member that is not there is not an error.
func (l peerLocal) Depart(_ context.Context, from string) error {
	n := l.n
	if n.raft == nil || !n.raft.isLeader() {
		return status.Error(codes.FailedPrecondition, notLeader)
	}
	f := n.raft.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == from {
			if !n.raftChange("removing a member that is leaving", from, n.raft.raft.RemoveServer(srv.ID, 0, 0)) {
				return status.Error(codes.Unavailable, "removing "+from+" from raft failed")
			}
		}
	}
	return nil
}
