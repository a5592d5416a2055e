package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// Settlements whose owner does not answer are resent with a growing
// delay; after the last attempt the usage is recorded here (so the ledger
// still gets it) and the owner's reservation is left to run out: its
// tokens refill with time and its lease expires with its TTL.
const (
	maxSettleAttempts = 5
	settleBackoff     = 100 * time.Millisecond
	settleTimeout     = 2 * time.Second
	// settleDedupTTL is how long an owner remembers a settlement it has
	// applied, so a resent one (its answer was lost) is not applied twice;
	// well beyond the time a sender spends resending.
	settleDedupTTL = 2 * time.Minute
)

// settleQueue holds settlements not yet applied. It has no bound: each is
// owed for a request already served, and dropping one would lose usage.
type settleQueue struct {
	mu    sync.Mutex
	items []*settlement
	// busy counts settlements taken out and not done: being sent, or
	// waiting to be resent.
	busy int
	seq  uint64
	wake chan struct{}
}

func newSettleQueue() *settleQueue {
	// Sequence numbers start from the clock so that they keep growing
	// across restarts of the node.
	return &settleQueue{wake: make(chan struct{}, 1), seq: uint64(time.Now().UnixNano())}
}

func (q *settleQueue) add(s *settlement) {
	q.mu.Lock()
	q.seq++
	s.seq = q.seq
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

// take removes everything queued; it counts as busy until done.
func (q *settleQueue) take() []*settlement {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	q.busy += len(out)
	return out
}

func (q *settleQueue) done(k int) {
	q.mu.Lock()
	q.busy -= k
	q.mu.Unlock()
}

// retry puts busy settlements back in the queue.
func (q *settleQueue) retry(ss []*settlement) {
	q.mu.Lock()
	q.items = append(q.items, ss...)
	q.busy -= len(ss)
	q.mu.Unlock()
	q.signal()
}

// pending counts settlements queued or under way.
func (q *settleQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) + q.busy
}

// runSettler applies queued settlements until ctx ends.
func (n *Node) runSettler(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.settles.wake:
		}
		n.settleQueued(ctx)
	}
}

func (n *Node) settleQueued(ctx context.Context) {
	for {
		batch := n.settles.take()
		if len(batch) == 0 {
			return
		}
		n.settleBatch(ctx, batch)
	}
}

// drainSettles applies every queued settlement, waiting for those being
// resent, until none is left or ctx ends: a graceful stop runs it before
// the hand-off and the last usage flush.
func (n *Node) drainSettles(ctx context.Context) error {
	for {
		n.settleQueued(ctx)
		if n.settles.pending() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// settleBatch settles here what this node owns (and what it decided
// degraded), and sends the rest to their owners, one call per owner.
func (n *Node) settleBatch(ctx context.Context, batch []*settlement) {
	remote := map[string][]*settlement{}
	here := 0
	for _, s := range batch {
		owner := n.Owner(s.tenant)
		if s.degraded || owner == "" || owner == n.name {
			n.settleHere(ctx, s)
			here++
			continue
		}
		remote[owner] = append(remote[owner], s)
	}
	n.settles.done(here)
	var wg sync.WaitGroup
	for owner, ss := range remote {
		wg.Go(func() { n.sendSettles(ctx, owner, ss) })
	}
	wg.Wait()
}

// sendSettles sends settlements to their owner, resending later on
// failure (by the ring of that time) and recording them here after the
// last attempt.
func (n *Node) sendSettles(ctx context.Context, owner string, ss []*settlement) {
	err := n.callSettle(ctx, owner, ss)
	if err == nil {
		n.metrics.settled.WithLabelValues("sent").Add(float64(len(ss)))
		n.settles.done(len(ss))
		return
	}
	var again []*settlement
	attempt := 0
	for _, s := range ss {
		s.attempts++
		if s.attempts < maxSettleAttempts && ctx.Err() == nil {
			again = append(again, s)
			attempt = max(attempt, s.attempts)
			continue
		}
		n.log.Warn("owner unreachable; usage recorded here, its reservation runs out", "owner", owner, "tenant", s.tenant, "err", err)
		n.settleUnreachable(s)
	}
	n.settles.done(len(ss) - len(again))
	if len(again) > 0 {
		time.AfterFunc(settleBackoff<<(attempt-1), func() { n.settles.retry(again) })
	}
}

func (n *Node) callSettle(ctx context.Context, owner string, ss []*settlement) error {
	client, err := n.peers.client(owner)
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

// settleHere applies a settlement to this node's store and records its
// usage. A tenant handed on meanwhile gets it passed on once.
func (n *Node) settleHere(ctx context.Context, s *settlement) {
	store := n.store
	if s.degraded {
		store = n.fallback
	}
	err := store.Adjust(s.tenant, s.adjustments())
	switch {
	case err == nil:
		var charged int64 // the month entry now holds the request's real tokens
		if !s.degraded && s.hasLimit(LimitTokensPerMonth) {
			charged = s.usage.Tokens()
		}
		n.record(s, charged, s.monthWindow)
		n.metrics.settled.WithLabelValues("owner").Inc()
	case errors.Is(err, limiter.ErrMoved):
		if to, ok := n.handoff.movedTo(s.tenant); ok && s.hops < maxHops {
			s.hops++
			if n.callSettle(ctx, to, []*settlement{s}) == nil {
				n.metrics.settled.WithLabelValues("passed_on").Inc()
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
}

func (s *settlement) hasLimit(name string) bool {
	for _, l := range s.limits {
		if l.Name == name {
			return true
		}
	}
	return false
}

// settleDedup remembers the settlements an owner has applied lately.
type settleDedup struct {
	mu   sync.Mutex
	seen map[settleID]time.Time
}

type settleID struct {
	origin string
	seq    uint64
}

// first reports whether id has not been seen in the last settleDedupTTL,
// and remembers it.
func (d *settleDedup) first(id settleID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[settleID]time.Time{}
	}
	if _, ok := d.seen[id]; ok {
		return false
	}
	d.seen[id] = now
	if len(d.seen)%1024 == 0 {
		for k, t := range d.seen {
			if now.Sub(t) > settleDedupTTL {
				delete(d.seen, k)
			}
		}
	}
	return true
}
