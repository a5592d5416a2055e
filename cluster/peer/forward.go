package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/cluster/gossip"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// ForwardConfig tunes how a node sends checks to their owners.
type ForwardConfig struct {
	// BatchWindow is how long the first check of a batch waits for others
	// to the same owner when the queue to it is long (see windowLeft):
	// 200µs when zero; negative sends what is queued at once.
	BatchWindow time.Duration
	// BatchMax caps a batch; 1 sends every check in its own call. 128 by
	// default.
	BatchMax int
	// Timeout is how long a forwarded check may take before the failure
	// policy decides instead (or less, if the caller's deadline is nearer).
	// 500ms by default.
	Timeout time.Duration
}

// SetDefaults fills in the zero fields.
func (c *ForwardConfig) SetDefaults() {
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

// Forwarder coalesces concurrent checks to the same owner into batches
// sent on one stream per owner.
type Forwarder struct {
	cfg   ForwardConfig
	self  string
	peers *Pool
	// observe records each batch: its size, how long it took, its error.
	observe func(size int, took time.Duration, err error)
	ctx     context.Context // the node's lifetime

	// abandoned takes an owner's answer that came after its caller had
	// given up (see pending.state); nil drops it.
	abandoned func(*quota.CheckRequest, *quota.CheckResponse)

	mu      sync.Mutex
	queues  map[string]*queue
	streams map[string]*peerStream
	wg      sync.WaitGroup
}

// queue holds the checks waiting for one owner. One batch at a time is out
// to the owner: while it is, new checks queue up and leave together in the
// next, so the busier the owner, the more each message carries. stop
// retires the queue when the owner leaves the cluster.
type queue struct {
	owner string
	kick  chan struct{} // wakes the sender goroutine; buffered 1
	stop  chan struct{}

	mu      sync.Mutex
	waiting []*pending
	busy    bool // someone holds the duty of sending the next batch
	waiter  bool // ... and it is the sender goroutine
	window  bool // the next batch may wait its window: none is out
	last    int  // the size of the last batch sent
}

// maxQueued bounds the checks waiting for one owner: beyond it the owner
// is not keeping up, and the failure policy decides at once.
func (f *Forwarder) maxQueued() int { return 4 * f.cfg.BatchMax }

var errQueueFull = errors.New("too many checks waiting for the owner")

// enqueue adds p to q and, if q was idle, sends it.
func (f *Forwarder) enqueue(q *queue, p *pending) error {
	q.mu.Lock()
	if len(q.waiting) >= f.maxQueued() {
		q.mu.Unlock()
		return errQueueFull
	}
	q.waiting = append(q.waiting, p)
	if q.busy {
		full := q.waiter && len(q.waiting) == f.cfg.BatchMax
		q.mu.Unlock()
		if full {
			q.wake() // the sender is waiting out a window that need not end
		}
		return nil
	}
	q.busy = true
	q.mu.Unlock()
	f.next(q, true)
	return nil
}

func (q *queue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// take removes up to n of the oldest waiting checks. The caller holds q.mu.
func (q *queue) take(n int) []*pending {
	n = min(n, len(q.waiting))
	batch := slices.Clone(q.waiting[:n])
	rest := copy(q.waiting, q.waiting[n:])
	clear(q.waiting[rest:])
	q.waiting = q.waiting[:rest]
	q.last = len(batch)
	return batch
}

// outBatch is a batch sent and not yet ended.
type outBatch struct {
	q       *queue
	batch   []*pending
	start   time.Time
	timer   *time.Timer    // ends the batch at its latest caller's deadline (for a reservation, a forward timeout at least)
	sending sync.WaitGroup // while Send writes the batch
}

type pending struct {
	queued   time.Time
	deadline time.Time
	req      *quota.CheckRequest
	check    *peerv1.ForwardedCheck
	done     chan forwardResult // buffered: the sender never blocks on a caller that gave up
	timer    *time.Timer        // the caller's wait: up to deadline
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
func (f *Forwarder) deliver(p *pending, r forwardResult) {
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
	resp *quota.CheckResponse
	err  error
}

// NewForwarder returns a forwarder for the node self, which dials through
// peers. observe records every batch; abandoned (if not nil) takes an
// owner's answer that came after its caller had given up. What it starts
// stops when ctx ends; Wait waits for that.
func NewForwarder(ctx context.Context, cfg ForwardConfig, self string, peers *Pool, observe func(size int, took time.Duration, err error), abandoned func(*quota.CheckRequest, *quota.CheckResponse)) *Forwarder {
	cfg.SetDefaults()
	f := &Forwarder{cfg: cfg, self: self, peers: peers, observe: observe, ctx: ctx, abandoned: abandoned, queues: map[string]*queue{}, streams: map[string]*peerStream{}}
	f.wg.Go(f.closeAll)
	return f
}

// errForwardTimeout means the owner did not answer within the forward
// timeout.
var errForwardTimeout = errors.New("owner did not answer in time")

// Forward asks owner to decide req and waits for the answer, the caller's
// deadline or the forward timeout, whichever comes first.
func (f *Forwarder) Forward(ctx context.Context, owner string, req *quota.CheckRequest, hops uint32, pullFrom string) (*quota.CheckResponse, error) {
	now := time.Now()
	deadline := now.Add(f.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// A second hop is sent on its own: it is made while deciding a batch
	// from a peer, and queueing it behind that peer's batches to us could
	// wait on itself.
	if f.cfg.BatchMax == 1 || hops > 1 {
		check := &peerv1.ForwardedCheck{}
		setForwardedCheck(check, req)
		check.TimeoutNanos, check.Hops, check.PullFrom = int64(time.Until(deadline)), hops, pullFrom
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return f.forwardAlone(ctx, owner, req, check)
	}
	p := getPending(req, now, deadline)
	setForwardedCheck(p.check, req)
	p.check.Hops, p.check.PullFrom = hops, pullFrom
	if err := f.enqueue(f.queue(owner), p); err != nil {
		p.release()
		return nil, err
	}
	select {
	case r := <-p.done:
		p.release()
		return r.resp, r.err
	case <-ctx.Done():
		if r, ok := p.giveUp(); ok {
			p.release()
			return r.resp, r.err
		}
		return nil, ctx.Err()
	case <-p.timer.C:
		if r, ok := p.giveUp(); ok {
			p.release()
			return r.resp, r.err
		}
		return nil, errForwardTimeout
	}
}

// Pendings are reused: a forwarded check would otherwise allocate its
// record, channel, timer and peer message each time. A pending goes back
// only once the Forwarder is done with it, which is certain when its caller
// has received the answer; one whose caller gave up first is left to the
// garbage collector.
var pendingPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pending{done: make(chan forwardResult, 1), timer: t, check: &peerv1.ForwardedCheck{}}
}}

// getPending returns a pending for req, queued at now, whose timer (a
// timer rather than a derived context: a context costs several allocations
// more) fires at deadline.
func getPending(req *quota.CheckRequest, now, deadline time.Time) *pending {
	p := pendingPool.Get().(*pending)
	p.queued, p.deadline, p.req = now, deadline, req
	p.state.Store(pendingWaiting)
	p.timer.Reset(deadline.Sub(now))
	return p
}

func (p *pending) release() {
	p.timer.Stop() // since Go 1.23, no stale fire is received after this
	p.req = nil
	pendingPool.Put(p)
}

// forwardAlone sends one check in its own call, from the caller's
// goroutine: forwarding without batching.
func (f *Forwarder) forwardAlone(ctx context.Context, owner string, req *quota.CheckRequest, check *peerv1.ForwardedCheck) (*quota.CheckResponse, error) {
	start := time.Now()
	resp, err := f.call(ctx, owner, &peerv1.CheckBatchRequest{From: f.self, Checks: []*peerv1.ForwardedCheck{check}})
	f.observe(1, time.Since(start), err)
	if err != nil {
		return nil, err
	}
	return responseOf(req, resp.Results[0])
}

func (f *Forwarder) queue(owner string) *queue {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queues[owner]
	if q == nil {
		q = &queue{owner: owner, kick: make(chan struct{}, 1), stop: make(chan struct{})}
		f.queues[owner] = q
		f.wg.Go(func() { f.sender(q) })
	}
	return q
}

// Retire stops the queues of nodes that are no longer members. Checks
// still queued there end with their callers' timeout. Their streams take no
// new batch but stay open for the answers to the batches out on them: a
// node that leaves gracefully answers what it has decided, and cutting
// the stream would turn each of those admissions into an error (and a check
// retried elsewhere would be charged twice).
func (f *Forwarder) Retire(members []gossip.Member) {
	live := make(map[string]bool, len(members))
	for _, m := range members {
		live[m.Name] = true
	}
	var closing []*peerStream
	f.mu.Lock()
	for name, q := range f.queues {
		if !live[name] {
			close(q.stop)
			delete(f.queues, name)
		}
	}
	for name, ps := range f.streams {
		if !live[name] {
			delete(f.streams, name)
			closing = append(closing, ps)
		}
	}
	f.mu.Unlock()
	for _, ps := range closing {
		ps.close(f.cfg.Timeout)
	}
}

// next sends the next batch to q's owner, or leaves q idle when nothing
// waits. Its caller holds q's sending duty (q.busy). The batch leaves
// from the calling goroutine (a caller that found the queue idle, or
// whoever ended the batch that was out) when the owner's stream is open
// and no batch window is to be waited; otherwise q's sender goroutine takes
// the duty over. Sending from whoever is at hand spares a lone check, and
// every batch, two goroutine hand-offs.
func (f *Forwarder) next(q *queue, window bool) {
	q.mu.Lock()
	if len(q.waiting) == 0 {
		q.busy = false
		q.mu.Unlock()
		return
	}
	q.window = window
	ps := f.openStream(q.owner)
	if ps == nil || !ps.usable() || f.windowLeft(q) > 0 {
		q.waiter = true
		q.mu.Unlock()
		q.wake()
		return
	}
	batch := q.take(f.cfg.BatchMax)
	q.mu.Unlock()
	f.send(q, ps, batch)
}

// windowLeft is how long the oldest waiting check still waits for company.
// The window adapts to the load: it is waited only by a batch that starts
// an idle queue, and only when the last batch was long (a quarter of
// BatchMax, at least 2). A short queue leaves at once: one batch is out at
// a time, so what comes meanwhile leaves together in the next, and the
// batches grow with the load by themselves; waiting as well costs every
// check the window (and a sub-millisecond timer takes about a millisecond
// to fire) to save few messages. Only a long queue, whose owner the
// messages keep busy, saves enough of them to wait. An empty queue (the
// sender woken late, after a full batch left) has nothing to wait for.
// The caller holds q.mu.
func (f *Forwarder) windowLeft(q *queue) time.Duration {
	if !q.window || q.last < f.longBatch() || len(q.waiting) == 0 || len(q.waiting) >= f.cfg.BatchMax {
		return 0
	}
	return f.cfg.BatchWindow - time.Since(q.waiting[0].queued)
}

// longBatch is the size from which a batch counts as long (windowLeft).
func (f *Forwarder) longBatch() int { return max(f.cfg.BatchMax/4, 2) }

// sender takes q's sending duty when it cannot be done at once: it waits
// out batch windows and opens the owner's stream (which waits while the
// connection comes up), until the node stops or the owner leaves.
func (f *Forwarder) sender(q *queue) {
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-q.stop:
			return
		case <-q.kick:
		}
		q.mu.Lock()
		mine, wait := q.waiter, f.windowLeft(q)
		q.mu.Unlock()
		if !mine {
			continue // a stale wake-up
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-f.ctx.Done():
			case <-q.stop:
			case <-q.kick: // the batch filled up
			case <-t.C:
			}
			t.Stop()
			q.wake() // look again: the window may still be open
			continue
		}
		ps, err := f.stream(q)
		q.mu.Lock()
		q.waiter = false
		batch := q.take(f.cfg.BatchMax)
		q.mu.Unlock()
		if err != nil {
			f.finish(&outBatch{q: q, batch: batch, start: time.Now()}, nil, err)
			continue
		}
		f.send(q, ps, batch)
	}
}

// send puts one batch on owner's stream; whoever ends it (its answer, its
// timer, or the stream breaking) hands each caller its answer and sends
// the next.
func (f *Forwarder) send(q *queue, ps *peerStream, batch []*pending) {
	out := &outBatch{q: q, batch: batch, start: time.Now()}
	req := &peerv1.CheckBatchRequest{From: f.self, Checks: make([]*peerv1.ForwardedCheck, len(batch))}
	var latest time.Time
	for i, p := range batch {
		// Each check carries the time it has left now, not when queued.
		p.check.TimeoutNanos = int64(p.deadline.Sub(out.start))
		req.Checks[i] = p.check
		latest = maxTime(latest, p.deadline)
		if p.req.Reserve {
			// The owner may admit a reservation in its caller's last
			// moment: listen for the answer a while longer, so that an
			// admission nobody waits for is still settled (deliver).
			latest = maxTime(latest, out.start.Add(f.cfg.Timeout))
		}
	}
	// Once registered the batch may end at any moment (its timer, the
	// stream breaking), but its pendings, whose messages req holds, are
	// not handed back until Send is done with them (out.sending).
	out.sending.Add(1)
	if err := f.register(q.owner, ps, out, req, latest); err != nil {
		out.sending.Done()
		f.finish(out, nil, err)
		return
	}
	ps.sendMu.Lock()
	err := errStreamClosing
	if !ps.halfClosed { // closed since register: the batch goes nowhere, the stream stays for the answers
		err = ps.stream.Send(req)
	}
	ps.sendMu.Unlock()
	out.sending.Done()
	switch {
	case errors.Is(err, errStreamClosing):
		if ps.take(req.Id) != nil {
			out.timer.Stop()
			f.finish(out, nil, err)
		}
	case err != nil:
		f.dropStream(q.owner, ps, err)
	}
}

// finish ends a batch once: it hands each caller its answer, or err, and
// passes the queue's sending duty on.
func (f *Forwarder) finish(out *outBatch, resp *peerv1.CheckBatchResponse, err error) {
	out.sending.Wait() // for Send to be done with the batch's messages
	owner := out.q.owner
	if err == nil && len(resp.GetResults()) != len(out.batch) {
		err = fmt.Errorf("%d results for %d checks", len(resp.GetResults()), len(out.batch))
	}
	if !errors.Is(err, errStreamClosing) { // our own doing, not the owner's
		f.peers.Report(owner, err)
	}
	if err != nil {
		err = fmt.Errorf("forwarding to %s: %w", owner, err)
	}
	f.observe(len(out.batch), time.Since(out.start), err)
	for i, p := range out.batch {
		if err != nil {
			f.deliver(p, forwardResult{err: err})
			continue
		}
		r, rerr := responseOf(p.req, resp.Results[i])
		f.deliver(p, forwardResult{resp: r, err: rerr})
	}
	f.next(out.q, false)
}

func (f *Forwarder) call(ctx context.Context, owner string, req *peerv1.CheckBatchRequest) (*peerv1.CheckBatchResponse, error) {
	client, err := f.peers.Client(owner)
	if err != nil {
		return nil, fmt.Errorf("forwarding to %s: %w", owner, err)
	}
	resp, err := client.CheckBatch(ctx, req)
	f.peers.Report(owner, err)
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

// Config is the forwarder's configuration, defaults filled in.
func (f *Forwarder) Config() ForwardConfig { return f.cfg }

// Wait waits for the goroutines the forwarder started; its context must
// have ended.
func (f *Forwarder) Wait() { f.wg.Wait() }
