package cluster

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// Pulls: a node about to decide for a tenant whose state may still be on
// another node (it has just joined, the other is leaving, or the other
// says it is handing the tenant over) asks for it first.

// waitPulls waits until the pulls in flight have landed (a pull takes at
// most pullTimeout), so that a leaving node's hand-off finds the state
// they bring. No pull starts once the node is leaving (see settle).
func (h *handoff) waitPulls(ctx context.Context) {
	for {
		h.mu.Lock()
		var call *pullCall
		for _, c := range h.pulls {
			call = c
			break
		}
		h.mu.Unlock()
		if call == nil {
			return
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			return
		}
	}
}

// pullSource says where tenant's state may still be, if anywhere.
func (h *handoff) pullSource(tenant, pullFrom string) string {
	if pullFrom != "" {
		return pullFrom
	}
	if h.joinWindowOpen() {
		return h.n.view.Load().others.Owner(tenant)
	}
	if !h.anyLeavers.Load() {
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, l := range h.leavers {
		if time.Now().Before(l.until) && l.ring.Owner(tenant) == name {
			return name
		}
	}
	return ""
}

// settle makes sure tenant's state is here before this node decides for
// it, pulling it from where it may still be. Other checks for the same
// tenant wait for the one pull. It fails only if ctx ends first.
func (h *handoff) settle(ctx context.Context, tenant, pullFrom string) error {
	from := h.pullSource(tenant, pullFrom)
	if from == "" || from == h.n.name {
		return nil // the common case: nothing can be in flight
	}
	h.mu.Lock()
	if time.Since(h.resolved[tenant]) < h.window {
		h.mu.Unlock()
		return nil
	}
	if h.n.leaving.Load() {
		// Never decided here (see route); and state pulled in now could
		// miss this node's own hand-off.
		h.mu.Unlock()
		return fmt.Errorf("%w: %s is leaving", quota.ErrNotReady, h.n.name)
	}
	if call := h.pulls[tenant]; call != nil {
		h.mu.Unlock()
		select {
		case <-call.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	call := &pullCall{done: make(chan struct{})}
	h.pulls[tenant] = call
	h.mu.Unlock()

	h.log.Debug("pulling", "tenant", tenant, "from", from)
	h.pull(ctx, tenant, from)

	h.mu.Lock()
	h.resolved[tenant] = time.Now()
	delete(h.pulls, tenant)
	h.mu.Unlock()
	close(call.done)
	return ctx.Err()
}

// pullTimeout bounds one pull: a check waits this long at most for state
// that may be in flight.
const pullTimeout = 500 * time.Millisecond

func (h *handoff) pull(ctx context.Context, tenant, from string) {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	client, err := h.n.peers.Client(from)
	var resp *peerv1.PullResponse
	if err == nil {
		resp, err = client.Pull(ctx, &peerv1.PullRequest{From: h.n.name, Tenants: []string{tenant}})
		h.n.peers.Report(from, err)
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
		if err == nil {
			h.n.dropReplica(ts.GetTenant())
		}
		if err != nil {
			h.log.Warn("bad pulled state", "tenant", tenant, "from", from, "err", err)
		}
	}
	if len(resp.GetTenants()) > 0 {
		h.n.metrics.observeHandoff("received", len(resp.GetTenants()), proto.Size(resp))
	}
}
