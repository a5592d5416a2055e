package cluster

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// handoff moves tenants' state when their owner changes.
//
// The old owner pushes: when a new ring no longer gives it a tenant, it
// takes the tenant's state out of its store and sends it to the new owner.
// Until the push lands, the new owner may meet the tenant first, so it can
// also pull:
//   - a node that has just joined pulls a tenant on first touch from the
//     node that owns it in the ring without the joiner (with rendezvous
//     hashing, exactly the node it took the tenant from);
//   - a check forwarded by a node that handed the tenant off says so
//     (pull_from), and the owner pulls from there first.
//
// A pull takes the state out of the old owner (or returns the copy of a
// push in flight) and leaves a tombstone there, so checks that still reach
// the old owner follow the state. Merges are conservative, so a state that
// arrives both ways counts once.
type handoff struct {
	n      *Node
	window time.Duration
	log    *slog.Logger

	pushMu sync.Mutex // one scan and push at a time

	// Read on every check without the lock: when did this node join (0:
	// not yet, or standalone), and are there any tombstones at all.
	joinedAt atomic.Int64
	anyMoved atomic.Bool

	mu       sync.Mutex
	outgoing map[string][]limiter.EntryState // taken, push not yet acknowledged
	moved    map[string]tombstone            // handed off: forward there
	resolved map[string]time.Time            // state settled here (pushed in or pulled)
	pulls    map[string]*pullCall            // pulls in flight, one per tenant
}

type tombstone struct {
	owner string
	at    time.Time
}

type pullCall struct{ done chan struct{} }

func newHandoff(n *Node, window time.Duration, log *slog.Logger) *handoff {
	return &handoff{
		n: n, window: window, log: log.With("component", "handoff"),
		outgoing: map[string][]limiter.EntryState{},
		moved:    map[string]tombstone{},
		resolved: map[string]time.Time{},
		pulls:    map[string]*pullCall{},
	}
}

// joined opens the window in which this node pulls tenants it has taken
// over by joining.
func (h *handoff) joined() { h.joinedAt.Store(time.Now().UnixNano()) }

func (h *handoff) joinWindowOpen() bool {
	at := h.joinedAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < h.window
}

// setMoved records a tombstone; the caller holds h.mu.
func (h *handoff) setMoved(tenant, owner string, at time.Time) {
	h.moved[tenant] = tombstone{owner: owner, at: at}
	h.anyMoved.Store(true)
}

// movedTo returns where tenant was handed off to recently, if it was.
// (The store refuses to decide for such a tenant: see limiter.Store.Seal.)
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

// push hands every tenant that ring gives to another node to its owner,
// and waits for the pushes to finish.
func (h *handoff) push(ctx context.Context, ring *Ring) {
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	var leaving []string
	h.n.store.Tenants(func(t string) bool {
		if ring.Owner(t) != h.n.name {
			leaving = append(leaving, t)
		}
		return true
	})
	byOwner := map[string]*peerv1.HandoffRequest{}
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
		req := byOwner[owner]
		if req == nil {
			req = &peerv1.HandoffRequest{From: h.n.name}
			byOwner[owner] = req
		}
		req.Tenants = append(req.Tenants, tenantStateToProto(t, states))
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for owner, req := range byOwner {
		wg.Go(func() { h.send(ctx, owner, req) })
	}
	wg.Wait()
}

func (h *handoff) send(ctx context.Context, owner string, req *peerv1.HandoffRequest) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	client, err := h.n.peers.client(owner)
	if err == nil {
		_, err = client.Handoff(ctx, req)
		h.n.peers.report(owner, err)
	}
	if err != nil {
		// The state stays in outgoing until the window closes, for the
		// new owner to pull.
		h.log.Warn("handing off failed", "to", owner, "tenants", len(req.Tenants), "err", err)
		return
	}
	h.n.metrics.observeHandoff("sent", len(req.Tenants), proto.Size(req))
	h.mu.Lock()
	for _, t := range req.Tenants {
		delete(h.outgoing, t.GetTenant())
	}
	h.mu.Unlock()
	h.log.Info("handed off", "to", owner, "tenants", len(req.Tenants))
}

// receive merges pushed state.
func (h *handoff) receive(req *peerv1.HandoffRequest) error {
	now := time.Now()
	for _, ts := range req.GetTenants() {
		states, err := tenantStateFromProto(ts)
		if err != nil {
			return err
		}
		if err := h.n.store.Merge(ts.GetTenant(), states); err != nil {
			return err
		}
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
	h.log.Debug("giving", "tenants", tenants, "to", from)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range tenants {
		states := h.n.store.Seal(t)
		if len(states) == 0 {
			states = h.outgoing[t]
		}
		h.setMoved(t, from, now)
		if states != nil {
			out.Tenants = append(out.Tenants, tenantStateToProto(t, states))
		}
	}
	return out
}

// settle makes sure tenant's state is here before this node decides for
// it: it pulls from pullFrom, or while the join window is open from the
// tenant's owner before this node joined. Other checks for the same tenant
// wait for the one pull.
func (h *handoff) settle(ctx context.Context, tenant, pullFrom string) {
	if pullFrom == "" {
		if !h.joinWindowOpen() {
			return // the common case: nothing can be in flight
		}
		pullFrom = h.n.view.Load().others.Owner(tenant)
	}
	h.mu.Lock()
	if pullFrom == "" || pullFrom == h.n.name || time.Since(h.resolved[tenant]) < h.window {
		h.mu.Unlock()
		return
	}
	if call := h.pulls[tenant]; call != nil {
		h.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
		}
		return
	}
	call := &pullCall{done: make(chan struct{})}
	h.pulls[tenant] = call
	h.mu.Unlock()

	h.log.Debug("pulling", "tenant", tenant, "from", pullFrom)
	h.pull(ctx, tenant, pullFrom)

	h.mu.Lock()
	h.resolved[tenant] = time.Now()
	delete(h.pulls, tenant)
	h.mu.Unlock()
	close(call.done)
}

func (h *handoff) pull(ctx context.Context, tenant, from string) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	client, err := h.n.peers.client(from)
	var resp *peerv1.PullResponse
	if err == nil {
		resp, err = client.Pull(ctx, &peerv1.PullRequest{From: h.n.name, Tenants: []string{tenant}})
	}
	if err != nil {
		h.log.Debug("pull failed; deciding with what is here", "tenant", tenant, "from", from, "err", err)
		return
	}
	for _, ts := range resp.GetTenants() {
		states, err := tenantStateFromProto(ts)
		if err == nil {
			err = h.n.store.Merge(ts.GetTenant(), states)
		}
		if err != nil {
			h.log.Warn("bad pulled state", "tenant", tenant, "from", from, "err", err)
		}
	}
	if len(resp.GetTenants()) > 0 {
		h.n.metrics.observeHandoff("received", len(resp.GetTenants()), proto.Size(resp))
	}
}

// prune forgets what is older than the window.
func (h *handoff) prune() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, ts := range h.moved {
		if time.Since(ts.at) > h.window {
			delete(h.moved, t)
			delete(h.outgoing, t)
			h.n.store.Unseal(t)
		}
	}
	h.anyMoved.Store(len(h.moved) > 0)
	for t, at := range h.resolved {
		if time.Since(at) > h.window {
			delete(h.resolved, t)
		}
	}
}
