package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// writeTimeout bounds a configuration write, forwarding included.
const writeTimeout = 2 * time.Second

// notLeader is the peer Apply answer of a node that is not the leader: the
// sender may try again, since nothing was written.
const notLeader = "not the raft leader"

// apply commits cmd as applyIndexed does and waits (within the same time
// bound) until this node's own copy has it, so that a read here sees the
// write.
func (n *Node) apply(ctx context.Context, cmd *configv1.Command) (*configv1.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	res, index, err := n.applyIndexed(ctx, cmd)
	if err == nil {
		// A follower catches up within a heartbeat. If it does not, the
		// write stands all the same.
		_ = n.fsm.WaitApplied(ctx, index)
	}
	return res, err
}

// applyIndexed commits cmd through the Raft leader (this node or, over
// gRPC, the one this node knows of) and returns the FSM's result and the
// write's log index. It fails with ErrNoQuorum within about writeTimeout
// when no leader can commit.
func (n *Node) applyIndexed(ctx context.Context, cmd *configv1.Command) (*configv1.Result, uint64, error) {
	if n.raft == nil {
		return nil, 0, quota.ErrNoRaft
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	for {
		res, index, err := n.applyOnce(ctx, data)
		if !errors.Is(err, errRetryApply) {
			return res, index, err
		}
		// No leader yet, or leadership is moving: nothing was written, so
		// trying again is safe.
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: no leader elected in time", quota.ErrNoQuorum)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errRetryApply marks an attempt that wrote nothing.
var errRetryApply = errors.New("no raft leader to write to")

func (n *Node) applyOnce(ctx context.Context, data []byte) (*configv1.Result, uint64, error) {
	if n.raft.isLeader() {
		return n.applyLocal(ctx, data)
	}
	leader := n.raft.leader()
	if leader == "" || leader == n.name {
		return nil, 0, errRetryApply
	}
	client, err := n.peers.Client(leader)
	if err != nil {
		return nil, 0, errRetryApply // gossip has not told us its address yet
	}
	resp, err := client.Apply(ctx, &peerv1.ApplyRequest{Command: data})
	switch {
	case err == nil:
		return resp.GetResult(), resp.GetIndex(), nil
	case status.Code(err) == codes.FailedPrecondition && status.Convert(err).Message() == notLeader:
		return nil, 0, errRetryApply
	case isNotMember(err):
		return nil, 0, errRetryApply // the leader has not heard of this node yet
	case ctx.Err() != nil:
		return nil, 0, fmt.Errorf("%w: the leader did not commit in time", quota.ErrNoQuorum)
	}
	return nil, 0, fmt.Errorf("%w: writing through leader %s: %v", quota.ErrNoQuorum, leader, status.Convert(err).Message())
}

// applyLocal commits data on this node, the leader.
func (n *Node) applyLocal(ctx context.Context, data []byte) (*configv1.Result, uint64, error) {
	f := n.raft.raft.Apply(data, writeTimeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // raft resolves every future, at the latest on shutdown
	select {
	case err := <-done:
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return nil, 0, errRetryApply
		case err != nil:
			return nil, 0, fmt.Errorf("%w: %v", quota.ErrNoQuorum, err)
		}
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: not committed in time", quota.ErrNoQuorum)
	}
	res, ok := f.Response().(*configv1.Result)
	if !ok {
		return nil, 0, fmt.Errorf("internal: raft answered %T", f.Response())
	}
	return res, f.Index(), nil
}
