package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// Settlements whose owner does not answer are resent, by the ring of the
// time, with a delay that grows to settleBackoffMax, for as long as the
// node runs: a dead owner leaves the ring within seconds and its tenants'
// new owner takes them. Only a stopping node gives up, and then records
// the usage itself (see drainSettles).
const (
	settleBackoff    = 50 * time.Millisecond
	settleBackoffMax = time.Second
	settleTimeout    = 2 * time.Second
	// maxSettleBatch bounds one call, well inside gRPC's 4 MiB message.
	maxSettleBatch = 1000
	// settleDedupTTL is how long an owner remembers a settlement it has
	// applied, so a resent one (its answer was lost) is not applied twice.
	settleDedupTTL = 2 * time.Minute
)

// settleQueue holds settlements not yet applied. It has no bound: each is
// owed for a request already served, and dropping one would lose usage.
// One call per owner is in flight at a time, so a slow owner delays only
// its own tenants.
type settleQueue struct {
	mu    sync.Mutex
	items []*settlement
	// sending maps owners with a call in flight to its size.
	sending map[string]int
	seq     uint64
	wake    chan struct{}
	senders sync.WaitGroup
}

func newSettleQueue() *settleQueue {
	return &settleQueue{wake: make(chan struct{}, 1), sending: map[string]int{}, seq: firstSeq()}
}

// nextSeq numbers a settlement.
func (q *settleQueue) nextSeq() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	return q.seq
}

// add queues s, numbering it unless it has a number (one resent from the
// journal keeps its own).
func (q *settleQueue) add(s *settlement) {
	q.mu.Lock()
	if s.seq == 0 {
		q.seq++
		s.seq = q.seq
	}
	q.items = append(q.items, s)
	q.mu.Unlock()
	q.signal()
}

func (q *settleQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pending counts settlements queued or being sent.
func (q *settleQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items)
	for _, k := range q.sending {
		n += k
	}
	return n
}

// runSettler applies queued settlements until ctx ends.
func (n *Node) runSettler(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := n.settleRound(ctx)
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-n.settles.wake:
		case <-timer.C:
		}
	}
}

// settleRound applies what this node settles itself and sends the rest,
// one batch per owner that has no call in flight. It returns when the
// earliest settlement waiting to be resent is due (zero if none).
func (n *Node) settleRound(ctx context.Context) time.Time {
	q := n.settles
	now := time.Now()
	var here []*settlement
	batches := map[string][]*settlement{}
	var next time.Time
	ring := n.currentRing()
	q.mu.Lock()
	keep := q.items[:0]
	for _, s := range q.items {
		if s.due.After(now) { // backing off: no owner to look up yet
			if next.IsZero() || s.due.Before(next) {
				next = s.due
			}
			keep = append(keep, s)
			continue
		}
		owner := ring.Owner(s.tenant)
		switch {
		case s.degraded || owner == "" || owner == n.name:
			here = append(here, s)
		case q.sending[owner] > 0 || len(batches[owner]) >= maxSettleBatch:
			keep = append(keep, s) // after the call in flight
		default:
			batches[owner] = append(batches[owner], s)
		}
	}
	clear(q.items[len(keep):])
	q.items = keep
	for owner, ss := range batches {
		q.sending[owner] = len(ss)
	}
	q.mu.Unlock()

	for _, s := range here {
		n.settleHere(ctx, s)
	}
	for owner, ss := range batches {
		q.senders.Go(func() { n.sendSettles(ctx, owner, ss) })
	}
	return next
}

// sendSettles makes one call to an owner; what fails goes back in the
// queue with a delay.
func (n *Node) sendSettles(ctx context.Context, owner string, ss []*settlement) {
	err := n.callSettle(ctx, owner, ss)
	q := n.settles
	attempts := 0
	q.mu.Lock()
	delete(q.sending, owner)
	if err != nil {
		due := time.Now()
		for _, s := range ss {
			s.attempts++
			s.due = due.Add(min(settleBackoff<<min(s.attempts-1, 10), settleBackoffMax))
		}
		attempts = ss[0].attempts
		q.items = append(q.items, ss...)
	}
	q.mu.Unlock()
	q.signal()
	if err != nil {
		if attempts == 3 {
			n.log.Warn("settling on the owner keeps failing; resending", "owner", owner, "settlements", len(ss), "err", err)
		}
		return
	}
	n.metrics.settled.WithLabelValues("sent").Add(float64(len(ss)))
	n.journalDone(ss...)
}

func (n *Node) callSettle(ctx context.Context, owner string, ss []*settlement) error {
	client, err := n.peers.Client(owner)
	if err != nil {
		return err
	}
	req := &peerv1.SettleRequest{From: n.name, Settlements: make([]*peerv1.Settlement, len(ss))}
	for i, s := range ss {
		req.Settlements[i] = s.toProto()
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	_, err = client.Settle(ctx, req)
	return err
}

// drainSettles settles everything queued before a graceful stop, until
// none is left or ctx ends. Then, once the calls in flight have returned,
// it records what is left here: the usage reaches the ledger with this
// node's last flush, and the owners' reservations run out by themselves.
func (n *Node) drainSettles(ctx context.Context) error {
	q := n.settles
	var err error
	for q.pending() > 0 {
		q.mu.Lock()
		for _, s := range q.items {
			s.due = time.Time{} // no waiting out a backoff now
		}
		q.mu.Unlock()
		n.settleRound(n.ctx)
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}
	q.senders.Wait()
	q.mu.Lock()
	left := q.items
	q.items = nil
	q.mu.Unlock()
	for _, s := range left {
		n.settleUnreachable(s)
	}
	if len(left) > 0 {
		n.log.Warn("owners unreachable on stop; usage recorded here", "settlements", len(left))
	}
	return err
}

// settleHere applies a settlement to this node's store and records its
// usage. A tenant handed on meanwhile gets it passed on once.
func (n *Node) settleHere(ctx context.Context, s *settlement) {
	store := n.store
	if s.degraded {
		store = n.fallback
	} else if n.repl != nil {
		n.repl.promoteOnCheck(s.tenant) // a dead owner's reservation: settled on its copy
	}
	err := store.Adjust(s.tenant, s.adjustments())
	switch {
	case err == nil:
		var charged int64 // the month entry now holds the request's real tokens
		if !s.degraded && slices.ContainsFunc(s.limits, func(l limiter.Limit) bool { return l.Name == quota.LimitTokensPerMonth }) {
			charged = s.usage.Tokens()
		}
		n.record(s, charged, s.monthWindow)
		n.metrics.settled.WithLabelValues("owner").Inc()
		n.journalRecorded(s)
	case errors.Is(err, limiter.ErrMoved):
		if to, ok := n.handoff.movedTo(s.tenant); ok && s.hops < maxHops {
			s.hops++
			if n.callSettle(ctx, to, []*settlement{s}) == nil {
				n.metrics.settled.WithLabelValues("passed_on").Inc()
				n.journalDone(s)
				return
			}
		}
		n.settleUnreachable(s)
	default:
		// The limits were validated on their way here; record the usage
		// all the same.
		n.log.Error("store refused a settlement", "tenant", s.tenant, "err", err)
		n.settleUnreachable(s)
	}
}

// settleUnreachable records the usage of a settlement its owner could not
// take, so the ledger has it; the owner's reservation runs out by itself.
func (n *Node) settleUnreachable(s *settlement) {
	n.record(s, 0, 0)
	n.metrics.settled.WithLabelValues("unreachable").Inc()
	n.journalRecorded(s)
}

// settleDedup remembers the settlements an owner has applied lately, in
// two generations: the older is dropped whole once the newer has lived
// settleDedupTTL/2, so an id is remembered between TTL/2 and TTL.
type settleDedup struct {
	mu        sync.Mutex
	cur, prev map[settleID]struct{}
	started   time.Time
}

type settleID struct {
	origin string
	seq    uint64
}

// first reports whether id is new, and remembers it.
func (d *settleDedup) first(id settleID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil || now.Sub(d.started) > settleDedupTTL/2 {
		d.prev, d.cur, d.started = d.cur, map[settleID]struct{}{}, now
	}
	if _, ok := d.cur[id]; ok {
		return false
	}
	if _, ok := d.prev[id]; ok {
		return false
	}
	d.cur[id] = struct{}{}
	return true
}
