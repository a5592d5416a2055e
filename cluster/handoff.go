package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/cluster/ring"
	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// handoff moves tenants' state when their owner changes.
//
// The old owner pushes: when its ring no longer gives it a tenant, it seals
// the tenant in its store (taking the state out, and refusing decisions
// that were already on their way) and sends the state to the new owner.
// Until the push lands, the new owner may meet the tenant first, so it can
// also pull, from:
//   - the node that sent a forwarded check saying it is handing the tenant
//     over (pull_from);
//   - while it has just joined, the tenant's owner in the ring without it
//     (with rendezvous hashing, exactly the node it took the tenant from);
//   - while a node is leaving gracefully, that node, for the tenants it
//     owned.
//
// A pull seals the tenant on the old owner too (or returns the copy of a
// push in flight) and leaves a tombstone there, so checks that still reach
// the old owner follow the state. Merges are conservative, so a state that
// arrives both ways counts once.
type handoff struct {
	n      *Node
	window time.Duration
	log    *slog.Logger

	pushMu    sync.Mutex // one scan and push at a time
	deliverMu sync.Mutex // one delivery at a time, so a tenant is in one send at most

	// Read on every check without the lock: when did this node join (0:
	// not yet, or it started the cluster), and is anything in flight.
	joinedAt   atomic.Int64
	anyMoved   atomic.Bool
	anyLeavers atomic.Bool

	mu       sync.Mutex
	outgoing map[string][]limiter.EntryState // sealed here, push not yet acknowledged
	sending  map[string]chan struct{}        // in a send now; closed when it is answered
	moved    map[string]tombstone            // handed off: follow there
	resolved map[string]time.Time            // state settled here (pushed in or pulled)
	pulls    map[string]*pullCall            // pulls in flight, one per tenant
	leavers  map[string]leaver               // nodes leaving gracefully
}

type tombstone struct {
	owner string
	at    time.Time
}

type leaver struct {
	ring  *ring.Ring // the ring while it still owned tenants
	until time.Time
}

type pullCall struct{ done chan struct{} }

func newHandoff(n *Node, window time.Duration, log *slog.Logger) *handoff {
	return &handoff{
		n: n, window: window, log: log.With("component", "handoff"),
		outgoing: map[string][]limiter.EntryState{},
		sending:  map[string]chan struct{}{},
		moved:    map[string]tombstone{},
		resolved: map[string]time.Time{},
		pulls:    map[string]*pullCall{},
		leavers:  map[string]leaver{},
	}
}

// joined opens the window in which this node pulls tenants it has taken
// over by joining.
func (h *handoff) joined() { h.joinedAt.Store(time.Now().UnixNano()) }

func (h *handoff) joinWindowOpen() bool {
	at := h.joinedAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < h.window
}

// ringChanged notes the nodes that left the ring gracefully: their tenants
// are pulled from them on first touch for a while.
func (h *handoff) ringChanged(old, ring *ring.Ring, leaving map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range old.Nodes() {
		if !ring.Contains(name) && leaving[name] && name != h.n.name {
			h.leavers[name] = leaver{ring: old, until: time.Now().Add(h.window)}
			h.anyLeavers.Store(true)
		}
	}
}

// setMoved records a tombstone; the caller holds h.mu. The state has left,
// so it is no longer settled here: if it is handed back, a check here pulls
// it rather than wait for the push.
func (h *handoff) setMoved(tenant, owner string, at time.Time) {
	h.moved[tenant] = tombstone{owner: owner, at: at}
	delete(h.resolved, tenant)
	h.anyMoved.Store(true)
}

// movedTo returns where tenant was handed off to recently, if it was.
func (h *handoff) movedTo(tenant string) (string, bool) {
	if !h.anyMoved.Load() {
		return "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.moved[tenant]
	if !ok || time.Since(t.at) > h.window {
		return "", false
	}
	return t.owner, true
}

// push hands every tenant that the current ring gives to another node to
// its owner, and waits for the owners' acknowledgements until ctx's
// deadline (a window's time if it has none). It returns how many tenants
// it could not hand off.
func (h *handoff) push(ctx context.Context) int {
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	ring := h.n.currentRing() // the newest, whichever change started this push
	var leaving []string
	h.n.store.Tenants(func(t string) bool {
		if ring.Owner(t) != h.n.name {
			leaving = append(leaving, t)
		}
		return true
	})
	if len(leaving) > 0 {
		// Commit the usage these tenants' month entries hold first, so
		// the entries travel without it and the new owner does not count
		// it again. Without quorum they travel with it: counted twice,
		// never lost.
		flushCtx, cancel := context.WithTimeout(ctx, writeTimeout)
		if err := h.n.FlushUsage(flushCtx); err != nil {
			h.log.Warn("flushing usage before a hand-off", "err", err)
		}
		cancel()
	}
	now := time.Now()
	h.mu.Lock()
	for _, t := range leaving {
		owner := ring.Owner(t)
		if owner == "" {
			continue // the last node is leaving: there is nobody to hand to
		}
		states := h.n.store.Seal(t)
		if len(states) == 0 {
			continue // pulled meanwhile
		}
		h.outgoing[t] = states
		h.setMoved(t, owner, now)
	}
	h.mu.Unlock()
	return h.deliver(ctx, deadlineOr(ctx, h.window))
}

// handoffChunk is one message to one owner; a reply acknowledges it whole.
type handoffChunk struct {
	owner string
	req   *peerv1.HandoffRequest
	size  int
}

// deliver sends everything sealed here and not yet acknowledged to the
// tenants' owners by the current ring, chunk by chunk, and tries again,
// backing off, what failed, until all is acknowledged, until is past or
// ctx ends. It returns how many tenants are left unacknowledged; those
// stay in outgoing, for their owner to pull or for prune to send again.
func (h *handoff) deliver(ctx context.Context, until time.Time) int {
	h.deliverMu.Lock()
	defer h.deliverMu.Unlock()
	backoff := 50 * time.Millisecond
	for {
		chunks := h.chunks()
		if len(chunks) == 0 {
			return 0
		}
		// Owners in parallel, one chunk at a time to each.
		var wg sync.WaitGroup
		for _, cs := range groupBy(chunks, func(c handoffChunk) string { return c.owner }) {
			wg.Go(func() {
				for _, c := range cs {
					if !h.send(ctx, c) {
						return // the owner is failing: the rest waits for the next round
					}
				}
			})
		}
		wg.Wait()
		left := h.pending()
		if left == 0 || ctx.Err() != nil || time.Now().Add(backoff).After(until) {
			return left
		}
		select {
		case <-ctx.Done():
			return h.pending()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// pending counts tenants sealed here whose hand-off is not acknowledged.
func (h *handoff) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.outgoing)
}

// chunks cuts what is waiting in outgoing into messages, by each tenant's
// owner in the current ring (which may differ from the one it was sealed
// for, if that node has gone since). A tenant the ring gives back to this
// node is taken back here instead.
func (h *handoff) chunks() []handoffChunk {
	ring := h.n.currentRing()
	var mine []string
	var cut tenantChunks
	now := time.Now()
	h.mu.Lock()
	for t, states := range h.outgoing {
		owner := ring.Owner(t)
		switch owner {
		case "":
			continue // nobody to hand to (the last node is leaving)
		case h.n.name:
			mine = append(mine, t)
			continue
		}
		if h.moved[t].owner != owner {
			h.setMoved(t, owner, now)
		}
		cut.add(owner, tenantStateToProto(t, states))
	}
	h.mu.Unlock()
	for _, t := range mine {
		h.reclaim(t)
	}
	out := make([]handoffChunk, len(cut.chunks))
	for i, c := range cut.chunks {
		out[i] = handoffChunk{owner: c.to, req: &peerv1.HandoffRequest{From: h.n.name, Tenants: c.tenants}, size: c.size}
	}
	return out
}

// send sends one chunk and, once the owner acknowledges it, forgets the
// tenants it carried. It reports whether the owner acknowledged it.
// Tenants taken back since the chunk was cut (see takeBack) are left out.
func (h *handoff) send(ctx context.Context, c handoffChunk) bool {
	done := make(chan struct{})
	defer close(done)
	h.mu.Lock()
	all := len(c.req.Tenants)
	kept := c.req.Tenants[:0]
	for _, t := range c.req.Tenants {
		if _, ok := h.outgoing[t.GetTenant()]; ok {
			kept = append(kept, t)
			h.sending[t.GetTenant()] = done
		}
	}
	c.req.Tenants = kept
	h.mu.Unlock()
	if len(kept) == 0 {
		return true
	}
	if len(kept) < all {
		c.size = proto.Size(c.req)
	}
	ok := h.call(ctx, c)
	h.mu.Lock()
	for _, t := range c.req.Tenants {
		delete(h.sending, t.GetTenant())
		if ok {
			delete(h.outgoing, t.GetTenant())
		}
	}
	h.mu.Unlock()
	return ok
}

// call sends c to its owner and reports whether the owner acknowledged it.
func (h *handoff) call(ctx context.Context, c handoffChunk) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	client, err := h.n.peers.Client(c.owner)
	if err == nil {
		_, err = client.Handoff(ctx, c.req)
		h.n.peers.Report(c.owner, err)
	}
	if err != nil {
		h.n.metrics.handoffFailed.Inc()
		h.log.Warn("handing off failed", "to", c.owner, "tenants", len(c.req.Tenants), "err", err)
		return false
	}
	h.n.metrics.observeHandoff("sent", len(c.req.Tenants), c.size)
	h.log.Info("handed off", "to", c.owner, "tenants", len(c.req.Tenants))
	return true
}

// receive merges pushed state. It merges even when this node's ring does
// not (yet) give it the tenant: most often its ring is behind the
// sender's, and passing the state straight back would bounce it. State
// that really belongs elsewhere moves with the next ring change.
func (h *handoff) receive(req *peerv1.HandoffRequest) error {
	if h.n.leaving.Load() {
		// Its own hand-off may have run already: taking state now would
		// strand it here. The sender keeps it and tries the next owner.
		return fmt.Errorf("%w: %s is leaving", quota.ErrNotReady, h.n.name)
	}
	now := time.Now()
	for _, ts := range req.GetTenants() {
		states, err := tenantStateFromProto(ts)
		if err != nil {
			return err
		}
		if err := h.n.store.Merge(ts.GetTenant(), states); err != nil {
			return err
		}
		h.n.dropReplica(ts.GetTenant())
		h.mu.Lock()
		h.resolved[ts.GetTenant()] = now
		delete(h.moved, ts.GetTenant())
		h.mu.Unlock()
	}
	h.n.metrics.observeHandoff("received", len(req.GetTenants()), proto.Size(req))
	return nil
}

// give answers a pull: the tenants' state leaves this node, and checks
// that still arrive here for them follow it to from.
func (h *handoff) give(from string, tenants []string) *peerv1.PullResponse {
	out := &peerv1.PullResponse{}
	now := time.Now()
	h.mu.Lock()
	for _, t := range tenants {
		if quota.ValidateTenant("", t) != nil {
			continue // no tenant of ours; a peer is trusted no more than a client
		}
		states := h.n.store.Seal(t)
		if len(states) == 0 {
			states = h.outgoing[t] // a push in flight: the puller gets the same copy
		}
		delete(h.outgoing, t) // from now on the puller holds it
		h.setMoved(t, from, now)
		if len(states) > 0 {
			out.Tenants = append(out.Tenants, tenantStateToProto(t, states))
		}
	}
	h.mu.Unlock()
	h.log.Debug("gave", "tenants", tenants, "to", from, "with_state", len(out.Tenants))
	if len(out.Tenants) > 0 {
		h.n.metrics.observeHandoff("sent", len(out.Tenants), proto.Size(out))
	}
	return out
}

// reclaim deals with a hand-off that its new owner never took: if the
// ring gives the tenant to this node, the state that was handed off comes
// back (or it starts afresh, unsealed) and reclaim reports true; if another
// node owns it, the tenant stays sealed here and the next prune hands the
// state to that owner.
func (h *handoff) reclaim(tenant string) bool {
	owner := h.n.currentRing().Owner(tenant)
	h.mu.Lock()
	states := h.outgoing[tenant]
	if owner != h.n.name && owner != "" {
		if len(states) > 0 {
			// Still to be handed over: to the owner now, by prune.
			h.setMoved(tenant, owner, time.Now().Add(-h.window))
			h.mu.Unlock()
			return false
		}
		delete(h.moved, tenant)
		h.mu.Unlock()
		// Nothing of it is here: the ring sends its checks to the owner,
		// and the seal would only outlive its purpose.
		h.n.store.Unseal(tenant)
		return false
	}
	delete(h.outgoing, tenant)
	delete(h.moved, tenant)
	h.mu.Unlock()
	if len(states) > 0 && h.n.store.Merge(tenant, states) == nil {
		return true
	}
	h.n.store.Unseal(tenant)
	return true
}

// takeBack settles a tenant that this node holds as handed to from, while
// from holds it as handed here (from has no state of it and decides
// nothing: it is sealed there, or from is leaving). If this node's own copy
// is still waiting to be delivered, and not in a send now (it waits for
// one to be answered), no other node has it or can get it, so it comes
// back into the store. If not, from acknowledged it, so it is pulled from
// from again, whatever was settled before. It reports whether the tenant
// can be decided here now.
func (h *handoff) takeBack(ctx context.Context, tenant, from string) bool {
	for {
		h.mu.Lock()
		if to, ok := h.moved[tenant]; !ok || to.owner != from {
			h.mu.Unlock()
			return false
		}
		if done := h.sending[tenant]; done != nil {
			h.mu.Unlock()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return false
			}
		}
		states, mine := h.outgoing[tenant]
		if !mine {
			delete(h.resolved, tenant)
			h.mu.Unlock()
			return h.settle(ctx, tenant, from) == nil
		}
		delete(h.outgoing, tenant)
		delete(h.moved, tenant)
		h.resolved[tenant] = time.Now()
		h.mu.Unlock()
		h.log.Debug("took back", "tenant", tenant, "from", from)
		return h.n.store.Merge(tenant, states) == nil
	}
}

// prune forgets what is older than the window. A hand-off that was never
// acknowledged or pulled is dealt with by reclaim.
func (h *handoff) prune() {
	var expired []string
	h.mu.Lock()
	for t, ts := range h.moved {
		if time.Since(ts.at) > h.window {
			expired = append(expired, t)
		}
	}
	for t, at := range h.resolved {
		if time.Since(at) > h.window {
			delete(h.resolved, t)
		}
	}
	for name, l := range h.leavers {
		if time.Now().After(l.until) {
			delete(h.leavers, name)
		}
	}
	h.anyLeavers.Store(len(h.leavers) > 0)
	h.mu.Unlock()
	resend := false
	for _, t := range expired {
		// A tombstone renewed meanwhile (a new push or pull) stays.
		h.mu.Lock()
		ts, ok := h.moved[t]
		h.mu.Unlock()
		if !ok || time.Since(ts.at) <= h.window || h.reclaim(t) {
			continue
		}
		h.mu.Lock()
		if len(h.outgoing[t]) > 0 {
			h.setMoved(t, ts.owner, time.Now())
			resend = true
		}
		h.mu.Unlock()
	}
	if resend {
		h.deliver(h.n.ctx, time.Now().Add(h.window))
	}
	h.mu.Lock()
	h.anyMoved.Store(len(h.moved) > 0)
	h.mu.Unlock()
}
