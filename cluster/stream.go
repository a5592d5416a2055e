package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// peerStream is one long-lived CheckStream to an owner, carrying the
// batches of every sender to it. A reader goroutine matches answers to
// batches by id; when the stream breaks, every batch waiting on it fails
// and the next batch opens a new stream.
type peerStream struct {
	stream peerv1.Peer_CheckStreamClient
	cancel context.CancelFunc

	sendMu sync.Mutex // one Send at a time, as gRPC requires

	mu      sync.Mutex
	nextID  uint64
	waiting map[uint64]chan *peerv1.CheckBatchResponse
	broken  error
}

var errStreamBroken = errors.New("stream to peer broken")

// stream returns the open stream to owner, opening one if need be. Only
// owner's sender calls it, so opening (which waits while the connection
// comes up) holds no lock and stalls no other owner's checks.
func (f *forwarder) stream(owner string) (*peerStream, error) {
	f.mu.Lock()
	ps := f.streams[owner]
	f.mu.Unlock()
	if ps != nil {
		return ps, nil
	}
	client, err := f.peers.client(owner)
	if err != nil {
		return nil, err
	}
	// The stream outlives any one batch: it runs under the node's lifetime
	// and ends when it breaks or the owner leaves (retire).
	ctx, cancel := context.WithCancel(f.ctx)
	s, err := client.CheckStream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	ps = &peerStream{stream: s, cancel: cancel, waiting: map[uint64]chan *peerv1.CheckBatchResponse{}}
	f.mu.Lock()
	_, member := f.queues[owner]
	if member {
		f.streams[owner] = ps
	}
	f.mu.Unlock()
	if !member {
		cancel() // retired while the stream opened
		return nil, ErrNoPeer
	}
	f.wg.Go(func() { f.read(owner, ps) })
	return ps, nil
}

// read delivers answers until the stream ends.
func (f *forwarder) read(owner string, ps *peerStream) {
	for {
		resp, err := ps.stream.Recv()
		if err != nil {
			f.dropStream(owner, ps, err)
			return
		}
		ps.mu.Lock()
		ch := ps.waiting[resp.GetId()]
		delete(ps.waiting, resp.GetId())
		ps.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
}

// dropStream forgets a broken stream and fails the batches waiting on it.
func (f *forwarder) dropStream(owner string, ps *peerStream, cause error) {
	f.mu.Lock()
	if f.streams[owner] == ps {
		delete(f.streams, owner)
	}
	f.mu.Unlock()
	ps.cancel()
	ps.mu.Lock()
	if ps.broken == nil {
		ps.broken = fmt.Errorf("%w: %v", errStreamBroken, cause)
	}
	for id, ch := range ps.waiting {
		close(ch)
		delete(ps.waiting, id)
	}
	ps.mu.Unlock()
}

// roundTrip sends one batch on owner's stream and waits for its answer
// until deadline.
func (f *forwarder) roundTrip(owner string, req *peerv1.CheckBatchRequest, deadline time.Time) (*peerv1.CheckBatchResponse, error) {
	ps, err := f.stream(owner)
	if err != nil {
		return nil, err
	}
	ch := make(chan *peerv1.CheckBatchResponse, 1)
	ps.mu.Lock()
	if ps.broken != nil {
		ps.mu.Unlock()
		return nil, ps.broken
	}
	ps.nextID++
	req.Id = ps.nextID
	ps.waiting[req.Id] = ch
	ps.mu.Unlock()

	ps.sendMu.Lock()
	err = ps.stream.Send(req)
	ps.sendMu.Unlock()
	if err != nil {
		f.dropStream(owner, ps, err)
		return nil, err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case resp, ok := <-ch:
		if !ok {
			ps.mu.Lock()
			defer ps.mu.Unlock()
			return nil, ps.broken
		}
		return resp, nil
	case <-timer.C:
	case <-f.ctx.Done():
	}
	ps.mu.Lock()
	delete(ps.waiting, req.Id)
	ps.mu.Unlock()
	return nil, errForwardTimeout
}
