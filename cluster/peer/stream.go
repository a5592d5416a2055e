package peer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// peerStream is one long-lived CheckStream to an owner, carrying every
// batch to it. A reader goroutine matches answers to batches by id; when
// the stream breaks, every batch out on it fails and the next batch opens a
// new stream.
type peerStream struct {
	stream peerv1.Peer_CheckStreamClient
	cancel context.CancelFunc

	sendMu     sync.Mutex // one Send (or CloseSend) at a time, as gRPC requires
	halfClosed bool       // CloseSend done; under sendMu

	mu      sync.Mutex
	nextID  uint64
	out     map[uint64]*outBatch
	broken  error
	closing bool // takes no new batch (close)
	// stale says the last batch to end on the stream went unanswered: the
	// owner may have stopped reading, and a Send may block on flow control
	// until the stream is cut. Only the queue's sender goroutine sends on
	// it then, so that callers keep to their deadlines; the next answer
	// clears it.
	stale bool
	// answered is when the owner last answered on the stream (or it
	// opened). A stream unanswered for two forward timeouts is cut, so
	// that the next batch opens a new one rather than wait on an owner
	// that stopped reading it.
	answered time.Time
}

var (
	errStreamBroken  = errors.New("stream to peer broken")
	errStreamClosing = errors.New("stream to peer closing")
)

// stream returns the open stream to q's owner, opening one if need be.
// Only q's sender calls it, so opening (which waits while the connection
// comes up) holds no lock and stalls no other owner's checks.
func (f *Forwarder) stream(q *queue) (*peerStream, error) {
	owner := q.owner
	ps := f.openStream(owner)
	if ps != nil {
		return ps, nil
	}
	client, err := f.peers.Client(owner)
	if err != nil {
		return nil, err
	}
	// The stream outlives any one batch, and the node's context too: it
	// ends when it breaks, or is closed once the answers to the batches out
	// on it are in (retire, closeAll). Opening it stops with the node.
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.ctx))
	stopOpening := context.AfterFunc(f.ctx, cancel)
	s, err := client.CheckStream(ctx)
	if !stopOpening() || err != nil {
		cancel()
		return nil, cmp.Or(err, quota.ErrNotReady)
	}
	ps = &peerStream{stream: s, cancel: cancel, out: map[uint64]*outBatch{}, answered: time.Now()}
	f.mu.Lock()
	current := f.queues[owner] == q && f.ctx.Err() == nil // else retire or closeAll has been, and would not see it
	other := f.streams[owner]
	if current && other == nil {
		f.streams[owner] = ps
	}
	f.mu.Unlock()
	switch {
	case !current:
		cancel() // retired, or the node stopped, while the stream opened
		return nil, ErrNoPeer
	case other != nil:
		cancel()
		return other, nil
	}
	f.wg.Go(func() { f.read(owner, ps) })
	return ps, nil
}

// close ends the stream once the batches out on it are answered: it takes
// no new batch, the owner sees the end of its input after the last of
// them, answers it, and ends the stream, which ends the reader. An owner
// that does not answer has the stream cut after wait. It does not wait: a
// Send blocked by an owner that stopped reading is cut then too.
func (ps *peerStream) close(wait time.Duration) {
	time.AfterFunc(wait, ps.cancel)
	ps.mu.Lock()
	ps.closing = true
	ps.mu.Unlock()
	go func() { // ends with the Send in progress, at the latest when cut
		ps.sendMu.Lock()
		defer ps.sendMu.Unlock()
		if !ps.halfClosed {
			ps.halfClosed = true
			_ = ps.stream.CloseSend() // on a broken stream the reader has already ended it
		}
	}()
}

// usable reports whether a batch may be sent on the stream from a caller's
// goroutine (see stale).
func (ps *peerStream) usable() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return !ps.stale && !ps.closing && ps.broken == nil
}

// closeAll closes every stream once the node stops, so that the batches
// out get their answers rather than an error (see retire).
func (f *Forwarder) closeAll() {
	<-f.ctx.Done()
	f.mu.Lock()
	streams := f.streams
	f.streams = map[string]*peerStream{}
	f.mu.Unlock()
	for _, ps := range streams {
		ps.close(f.cfg.Timeout)
	}
}

// StreamUsable reports whether the stream to owner is open and takes
// batches from callers directly (not only from the sender goroutine, after
// a batch went unanswered).
func (f *Forwarder) StreamUsable(owner string) (open, usable bool) {
	ps := f.openStream(owner)
	return ps != nil, ps != nil && ps.usable()
}

// openStream returns owner's stream if one is open, without waiting.
func (f *Forwarder) openStream(owner string) *peerStream {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[owner]
}

// register gives req an id and records out as waiting on owner's stream for
// its answer until deadline, when it ends with errForwardTimeout. Whoever
// takes a batch out of ps.out (an answer, its timer, the stream breaking)
// ends it, so it ends once.
func (f *Forwarder) register(owner string, ps *peerStream, out *outBatch, req *peerv1.CheckBatchRequest, deadline time.Time) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.broken != nil {
		return ps.broken
	}
	if ps.closing {
		return errStreamClosing
	}
	ps.nextID++
	id := ps.nextID
	req.Id = id
	ps.out[id] = out
	out.timer = time.AfterFunc(time.Until(deadline), func() {
		if ps.take(id) == nil {
			return
		}
		ps.mu.Lock()
		ps.stale = true
		silent := time.Since(ps.answered) > 2*f.cfg.Timeout
		ps.mu.Unlock()
		f.finish(out, nil, errForwardTimeout)
		if silent {
			f.dropStream(owner, ps, errOwnerSilent)
		}
	})
	return nil
}

var errOwnerSilent = errors.New("owner has not answered for two forward timeouts")

// take removes and returns the batch out under id, or nil if it has ended.
func (ps *peerStream) take(id uint64) *outBatch {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := ps.out[id]
	delete(ps.out, id)
	return out
}

// read ends batches with their answers until the stream ends.
func (f *Forwarder) read(owner string, ps *peerStream) {
	for {
		resp, err := ps.stream.Recv()
		if err != nil {
			f.dropStream(owner, ps, err)
			return
		}
		ps.mu.Lock()
		ps.stale, ps.answered = false, time.Now()
		ps.mu.Unlock()
		if out := ps.take(resp.GetId()); out != nil {
			out.timer.Stop()
			f.finish(out, resp, nil)
		}
	}
}

// dropStream forgets a broken stream and fails the batches out on it.
func (f *Forwarder) dropStream(owner string, ps *peerStream, cause error) {
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
	failed := make([]*outBatch, 0, len(ps.out))
	for id, out := range ps.out {
		failed = append(failed, out)
		delete(ps.out, id)
	}
	broken := ps.broken
	ps.mu.Unlock()
	for _, out := range failed {
		out.timer.Stop()
		f.finish(out, nil, broken)
	}
}
