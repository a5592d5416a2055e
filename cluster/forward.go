package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// ForwardConfig tunes how a node sends checks to their owners.
type ForwardConfig struct {
	// BatchWindow is how long the first check of a batch waits for others
	// to the same owner: 200µs when zero; negative sends what is queued at
	// once.
	BatchWindow time.Duration
	// BatchMax caps a batch; 1 sends every check in its own call. 128 by
	// default.
	BatchMax int
	// Timeout is how long a forwarded check may take before the failure
	// policy decides instead (or less, if the caller's deadline is nearer).
	// 500ms by default.
	Timeout time.Duration
}

func (c *ForwardConfig) setDefaults() {
	if c.BatchWindow < 0 {
		c.BatchWindow = 0
	} else if c.BatchWindow == 0 {
		c.BatchWindow = 200 * time.Microsecond
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 128
	}
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
}

// forwarder coalesces concurrent checks to the same owner into one
// CheckBatch call: a queue and a goroutine per owner.
type forwarder struct {
	cfg     ForwardConfig
	self    string
	peers   *peerPool
	metrics *metrics
	ctx     context.Context // the node's lifetime

	// abandoned takes an owner's answer that came after its caller had
	// given up (see pending.state); nil drops it.
	abandoned func(*CheckRequest, *CheckResponse)

	mu      sync.Mutex
	queues  map[string]*queue
	streams map[string]*peerStream
	wg      sync.WaitGroup
}

// queue holds the checks waiting for one owner; stop retires it when the
// owner leaves the cluster.
type queue struct {
	checks chan *pending
	stop   chan struct{}
}

type pending struct {
	queued   time.Time
	deadline time.Time
	req      *CheckRequest
	check    *peerv1.ForwardedCheck
	done     chan forwardResult // buffered: the sender never blocks on a caller that gave up
	// state settles the race between an answer and a caller giving up:
	// whoever moves it from waiting first decides. An answer that loses
	// went to nobody, yet the owner may have admitted the check.
	state atomic.Int32
}

const (
	pendingWaiting = iota
	pendingAnswered
	pendingAbandoned
)

// deliver hands the caller its answer, or, if it has given up, passes an
// owner's admission to the abandoned hook (a gateway reservation must be
// settled even when nobody will use it).
func (f *forwarder) deliver(p *pending, r forwardResult) {
	if p.state.CompareAndSwap(pendingWaiting, pendingAnswered) {
		p.done <- r
		return
	}
	if r.err == nil && r.resp != nil && r.resp.Allowed && f.abandoned != nil {
		f.abandoned(p.req, r.resp)
	}
}

// giveUp marks p abandoned; if its answer has just come, the caller gets
// it after all.
func (p *pending) giveUp() (forwardResult, bool) {
	if p.state.CompareAndSwap(pendingWaiting, pendingAbandoned) {
		return forwardResult{}, false
	}
	return <-p.done, true
}

type forwardResult struct {
	resp *CheckResponse
	err  error
}

func newForwarder(ctx context.Context, cfg ForwardConfig, self string, peers *peerPool, m *metrics) *forwarder {
	cfg.setDefaults()
	return &forwarder{cfg: cfg, self: self, peers: peers, metrics: m, ctx: ctx, queues: map[string]*queue{}, streams: map[string]*peerStream{}}
}

// errForwardTimeout means the owner did not answer within the forward
// timeout.
var errForwardTimeout = errors.New("owner did not answer in time")

// forward asks owner to decide req and waits for the answer, the caller's
// deadline or the forward timeout, whichever comes first.
func (f *forwarder) forward(ctx context.Context, owner string, req *CheckRequest, hops uint32, pullFrom string) (*CheckResponse, error) {
	deadline := time.Now().Add(f.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	check := forwardedCheck(req)
	check.TimeoutNanos, check.Hops, check.PullFrom = int64(time.Until(deadline)), hops, pullFrom
	// A second hop is sent on its own: it is made while deciding a batch
	// from a peer, and queueing it behind that peer's batches to us could
	// wait on itself.
	if f.cfg.BatchMax == 1 || hops > 1 {
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return f.forwardAlone(ctx, owner, req, check)
	}
	// A timer rather than a derived context: this runs for every
	// forwarded check, and a context costs several allocations more.
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	p := &pending{queued: time.Now(), deadline: deadline, req: req, check: check, done: make(chan forwardResult, 1)}
	select {
	case f.queue(owner).checks <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, errForwardTimeout
	}
	select {
	case r := <-p.done:
		return r.resp, r.err
	case <-ctx.Done():
		if r, ok := p.giveUp(); ok {
			return r.resp, r.err
		}
		return nil, ctx.Err()
	case <-timer.C:
		if r, ok := p.giveUp(); ok {
			return r.resp, r.err
		}
		return nil, errForwardTimeout
	}
}

// forwardAlone sends one check in its own call, from the caller's
// goroutine: forwarding without batching.
func (f *forwarder) forwardAlone(ctx context.Context, owner string, req *CheckRequest, check *peerv1.ForwardedCheck) (*CheckResponse, error) {
	start := time.Now()
	resp, err := f.call(ctx, owner, &peerv1.CheckBatchRequest{From: f.self, Checks: []*peerv1.ForwardedCheck{check}})
	f.metrics.observeBatch(1, time.Since(start), err)
	if err != nil {
		return nil, err
	}
	return responseOf(req, resp.Results[0])
}

func (f *forwarder) queue(owner string) *queue {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queues[owner]
	if q == nil {
		q = &queue{checks: make(chan *pending, 4*f.cfg.BatchMax), stop: make(chan struct{})}
		f.queues[owner] = q
		f.wg.Go(func() { f.collect(owner, q) })
	}
	return q
}

// retire stops the queues of nodes that are no longer members. Checks
// still queued there end with their callers' timeout.
func (f *forwarder) retire(members []Member) {
	live := make(map[string]bool, len(members))
	for _, m := range members {
		live[m.Name] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, q := range f.queues {
		if !live[name] {
			close(q.stop)
			delete(f.queues, name)
		}
	}
	for name, ps := range f.streams {
		if !live[name] {
			ps.cancel() // its reader fails what waits on it and drops it
		}
	}
}

// collect gathers a batch for one owner and sends it, until the node stops
// or the owner leaves. One batch per owner is in flight: while it waits for
// its answer, new checks queue up and leave in a bigger batch, so the
// busier the owner, the more each message carries.
//
// The window is waited only when the last batch had company: a lone
// caller's check leaves at once rather than wait for others who are not
// coming (and a sub-millisecond timer on an idle machine takes about a
// millisecond to fire).
func (f *forwarder) collect(owner string, q *queue) {
	last := 0
	for {
		var batch []*pending
		select {
		case <-f.ctx.Done():
			return
		case <-q.stop:
			return
		case p := <-q.checks:
			batch = append(batch, p)
		}
		batch = f.fill(q.checks, batch, last > 1)
		last = len(batch)
		f.send(owner, batch)
	}
}

// fill adds queued checks to batch until it is full or the window, which
// opened when the first of them was queued, closes (without wait, once
// nothing more is queued). A check that has already waited its window
// while the previous batch was out leaves with whatever has queued behind
// it.
func (f *forwarder) fill(q chan *pending, batch []*pending, waitWindow bool) []*pending {
	var window <-chan time.Time
	if wait := f.cfg.BatchWindow - time.Since(batch[0].queued); wait > 0 && waitWindow {
		t := time.NewTimer(wait)
		defer t.Stop()
		window = t.C
	}
	for len(batch) < f.cfg.BatchMax {
		select {
		case p := <-q:
			batch = append(batch, p)
			continue
		default:
		}
		if window == nil {
			return batch
		}
		select {
		case p := <-q:
			batch = append(batch, p)
		case <-window:
			return batch
		case <-f.ctx.Done():
			return batch
		}
	}
	return batch
}

// send makes one CheckBatch call and hands each caller its answer.
func (f *forwarder) send(owner string, batch []*pending) {
	start := time.Now()
	var latest time.Time
	req := &peerv1.CheckBatchRequest{From: f.self, Checks: make([]*peerv1.ForwardedCheck, len(batch))}
	for i, p := range batch {
		// Each check carries the time it has left now, not when queued.
		p.check.TimeoutNanos = int64(time.Until(p.deadline))
		req.Checks[i] = p.check
		if p.deadline.After(latest) {
			latest = p.deadline
		}
		if p.req.Reserve {
			// The owner may admit a reservation in its caller's last
			// moment: listen for the answer a while longer, so that an
			// admission nobody waits for is still settled (deliver).
			latest = maxTime(latest, start.Add(f.cfg.Timeout))
		}
	}
	resp, err := f.roundTrip(owner, req, latest)
	if err == nil && len(resp.GetResults()) != len(req.Checks) {
		err = fmt.Errorf("%d results for %d checks", len(resp.GetResults()), len(req.Checks))
	}
	if err != nil {
		err = fmt.Errorf("forwarding to %s: %w", owner, err)
	}
	f.peers.report(owner, err)
	f.metrics.observeBatch(len(batch), time.Since(start), err)
	for i, p := range batch {
		if err != nil {
			f.deliver(p, forwardResult{err: err})
			continue
		}
		r, rerr := responseOf(p.req, resp.Results[i])
		f.deliver(p, forwardResult{resp: r, err: rerr})
	}
}

func (f *forwarder) call(ctx context.Context, owner string, req *peerv1.CheckBatchRequest) (*peerv1.CheckBatchResponse, error) {
	client, err := f.peers.client(owner)
	if err != nil {
		return nil, fmt.Errorf("forwarding to %s: %w", owner, err)
	}
	resp, err := client.CheckBatch(ctx, req)
	f.peers.report(owner, err)
	if err != nil {
		return nil, fmt.Errorf("forwarding to %s: %w", owner, err)
	}
	if len(resp.GetResults()) != len(req.Checks) {
		return nil, fmt.Errorf("forwarding to %s: %d results for %d checks", owner, len(resp.GetResults()), len(req.Checks))
	}
	return resp, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// wait blocks until every goroutine of the forwarder has returned; the
// node's context must have ended.
func (f *forwarder) wait() { f.wg.Wait() }
