package cluster

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/cluster/ring"
	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// replication copies the state of the tenants this node owns to each
// one's successor: the node the ring would give it to if this one died.
// The store notes which tenants changed; every interval (or sooner, once
// a batch of them has changed) their latest state goes to the successors,
// in chunks like a hand-off's. Nothing of it is on a check's path.
//
// The successor holds the copies in a store of its own and decides
// nothing from them, until a ring change drops their owner without a
// graceful leave (it died, or restarted and lost its memory): then it
// promotes them into its own store, so the tenants go on from where they
// were a replication interval ago instead of from full. Checks that arrive
// while a promotion runs promote their tenant first. A graceful move (a
// hand-off or a pull) carries the authoritative state and drops the copy.
type replication struct {
	n        *Node
	interval time.Duration
	log      *slog.Logger
	replicas *limiter.Store // copies sent here by the tenants' owners
	kick     chan struct{}

	// since is when the oldest change not yet acknowledged may have been
	// made: the start of the last collection whose copies all landed.
	// ring is the ring of the last round. Both belong to run.
	since   time.Time
	ring    *ring.Ring
	failing map[string]bool // successors whose last copy failed, for the log

	promoting atomic.Int32 // promotions running
	mu        sync.Mutex
	deaths    []*death // ring changes whose dead owners' tenants are being promoted

	lag      prometheus.Histogram
	sent     prometheus.Counter
	received prometheus.Counter
	failures prometheus.Counter
	promoted prometheus.Counter
}

// death is a ring change (old to next) that dropped owners without a
// leave.
type death struct {
	old, next *ring.Ring
	dead      map[string]bool
}

func newReplication(n *Node, interval time.Duration, opts limiter.Options) *replication {
	opts.TrackChanges = false
	r := &replication{
		n: n, interval: interval, log: n.cfg.Logger.With("component", "replication"),
		replicas: limiter.NewStore(opts),
		kick:     make(chan struct{}, 1),
		failing:  map[string]bool{},
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_replication_lag_seconds",
			Help:    "How old a tenant's copy on its successor can be when a replication round lands: from the start of the last round that landed whole to this one's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_replicated_tenants_total",
			Help: "Tenant states this node copied to their successors (acknowledged).",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_replica_updates_total",
			Help: "Tenant state copies this node received from their owners.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_replication_failures_total",
			Help: "Replication messages a successor did not acknowledge (their tenants are sent again in the next round).",
		}),
		promoted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_replicas_promoted_total",
			Help: "Tenants this node took over from their copy after their owner died.",
		}),
	}
	n.metrics.registry.MustRegister(r.lag, r.sent, r.received, r.failures, r.promoted,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_replica_entries",
			Help: "Limit entries this node holds as copies for other owners.",
		}, func() float64 { return float64(r.replicas.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_replication_pending_tenants",
			Help: "Tenants whose state changed here and has not been copied to their successor yet.",
		}, func() float64 { return float64(n.store.PendingChanges()) }))
	return r
}

// nudge asks for a round now: a batch of changes is waiting. It runs under
// a store lock, so it only signals.
func (r *replication) nudge() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run copies changes every interval, or sooner when nudged, until ctx
// ends. After a round that failed it waits the interval out: a successor
// that fails fast must not make it spin.
func (r *replication) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	r.since = time.Now()
	kick := r.kick
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		kick = r.kick
		if !r.round(ctx) {
			kick = nil
		}
	}
}

// resync follows a ring change: tenants this node owns whose successor
// changed are noted, so the next round copies them to the new one, and the
// copies this node holds of tenants it is no longer the successor of (nor
// the owner) are dropped, their owners copying them elsewhere now.
func (r *replication) resync(view *ringView) {
	old := r.ring
	r.ring = view.ring
	if old != nil && sameNodes(old, view.ring) {
		return
	}
	owned, held := tenantsIn(r.n.store), tenantsIn(r.replicas)
	var oldOthers *ring.Ring
	if old != nil {
		oldOthers = old.Without(r.n.name)
	}
	for _, t := range owned {
		if view.ring.Owner(t) == r.n.name && (oldOthers == nil || oldOthers.Owner(t) != view.others.Owner(t)) {
			r.n.store.MarkChanged(t)
		}
	}
	without := map[string]*ring.Ring{}
	for _, t := range held {
		owner := view.ring.Owner(t)
		if owner == "" || owner == r.n.name {
			continue // ours now: promoted, or dropped by a hand-off
		}
		if without[owner] == nil {
			without[owner] = view.ring.Without(owner)
		}
		if without[owner].Owner(t) != r.n.name {
			r.drop(t)
		}
	}
}

// round sends every tenant changed since the last round to its successor,
// and reports whether all of it landed.
func (r *replication) round(ctx context.Context) bool {
	start := time.Now()
	view := r.n.view.Load()
	r.resync(view)
	var cut tenantChunks
	r.n.store.Changes(func(tenant string, states []limiter.EntryState) {
		if view.ring.Owner(tenant) != r.n.name {
			return // not (or no longer) ours: a hand-off carries it
		}
		to := view.others.Owner(tenant)
		if to == "" {
			return // the only node: nobody to copy to
		}
		cut.add(to, tenantStateToProto(tenant, states))
	})
	if len(cut.chunks) == 0 {
		r.since = start
		return true
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	for to, cs := range groupBy(cut.chunks, func(c tenantChunk) string { return c.to }) {
		wg.Go(func() {
			ok := true
			for _, c := range cs {
				if ok = ok && r.send(ctx, c); !ok {
					// Sent again next round, with whatever changed since.
					for _, ts := range c.tenants {
						r.n.store.MarkChanged(ts.GetTenant())
					}
				}
			}
			if !ok {
				failed.Store(true)
			}
			r.noteResult(to, ok)
		})
	}
	wg.Wait()
	if failed.Load() {
		return false
	}
	r.lag.Observe(time.Since(r.since).Seconds())
	r.since = start
	return true
}

// send sends one chunk and reports whether its successor acknowledged it.
func (r *replication) send(ctx context.Context, c tenantChunk) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	client, err := r.n.peers.Client(c.to)
	if err == nil {
		_, err = client.Replicate(ctx, &peerv1.ReplicateRequest{From: r.n.name, Tenants: c.tenants})
		r.n.peers.Report(c.to, err)
	}
	if err != nil {
		r.failures.Inc()
		r.log.Debug("replicating failed", "to", c.to, "tenants", len(c.tenants), "err", err)
		return false
	}
	r.sent.Add(float64(len(c.tenants)))
	return true
}

// noteResult logs when copies to a successor start or stop failing, not
// every round.
func (r *replication) noteResult(to string, ok bool) {
	r.mu.Lock()
	was := r.failing[to]
	if ok {
		delete(r.failing, to)
	} else {
		r.failing[to] = true
	}
	r.mu.Unlock()
	switch {
	case !ok && !was:
		r.log.Warn("copies to a successor failing; its tenants start from an older copy if this node dies", "to", to)
	case ok && was:
		r.log.Info("copies to a successor landing again", "to", to)
	}
}

// receive holds the copies an owner sent. A copy that is not valid is
// left out (and logged), the others held: refusing the message would have
// the sender send them all again, in vain.
func (r *replication) receive(in *peerv1.ReplicateRequest) {
	bad := 0
	var first error
	for _, ts := range in.GetTenants() {
		err := quota.ValidateTenant("", ts.GetTenant())
		var states []limiter.EntryState
		if err == nil {
			states, err = tenantStateFromProto(ts)
		}
		if err == nil {
			err = r.replicas.Replace(ts.GetTenant(), states)
		}
		if err != nil {
			bad++
			first = cmp.Or(first, err)
		}
	}
	r.received.Add(float64(len(in.GetTenants()) - bad))
	if bad > 0 {
		r.log.Warn("copies of tenant state left out as invalid", "from", in.GetFrom(), "tenants", bad, "first", first)
	}
}

// drop forgets the copy of tenant: its authoritative state has come here
// by a hand-off or a pull.
func (r *replication) drop(tenant string) { r.replicas.Take(tenant) }

// ownersDied notes that the owners in dead died in the ring change from
// old to next. Call it before next is in use: from then on a check
// promotes its tenant's copy first, until promote, called once next is in
// use, has promoted them all.
func (r *replication) ownersDied(old, next *ring.Ring, dead map[string]bool) *death {
	d := &death{old: old, next: next, dead: dead}
	r.mu.Lock()
	r.deaths = append(r.deaths, d)
	r.mu.Unlock()
	r.promoting.Add(1)
	return d
}

// promoteDead promotes, in the background, the copies whose owners died
// in d.
func (r *replication) promoteDead(d *death) {
	r.n.wg.Go(func() {
		defer r.promoting.Add(-1)
		r.promoteAll(d)
	})
}

// promoteAll promotes every copy whose owner died in d and that the ring
// gives this node.
func (r *replication) promoteAll(d *death) {
	promoted := 0
	for _, t := range tenantsIn(r.replicas) {
		if d.next.Owner(t) == r.n.name && r.promote(t, d) {
			promoted++
		}
	}
	r.mu.Lock()
	for i, x := range r.deaths {
		if x == d {
			r.deaths = append(r.deaths[:i], r.deaths[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	if promoted > 0 {
		r.log.Info("took over tenants from their copies after their owner died", "tenants", promoted, "dead", slices.Sorted(maps.Keys(d.dead)))
	}
}

// promoteOnCheck promotes tenant's copy, if a promotion is running and
// its owner died, before this node decides for it.
func (r *replication) promoteOnCheck(tenant string) {
	if r.promoting.Load() == 0 {
		return
	}
	r.mu.Lock()
	deaths := append([]*death(nil), r.deaths...)
	r.mu.Unlock()
	for _, d := range deaths {
		if r.promote(tenant, d) {
			return
		}
	}
}

// promote moves tenant's copy into the store if its owner in d died and
// the ring gives it to this node, and reports whether it did. It runs
// under the hand-off's lock, like the seals of a push or a pull, so a
// check that finds no copy finds the state in the store. A tenant sealed
// here because its state went to the owner that died takes the copy (the
// marker of a hand-off to a dead node is all that is left of it); one
// handed to a live node since keeps its seal.
func (r *replication) promote(tenant string, d *death) bool {
	if !d.dead[d.old.Owner(tenant)] {
		return false
	}
	h := r.n.handoff
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.n.currentRing().Owner(tenant) != r.n.name {
		return false
	}
	if r.n.store.Sealed(tenant) {
		to, moved := h.moved[tenant]
		_, pending := h.outgoing[tenant]
		if pending || (moved && !d.dead[to.owner]) {
			return false // the hand-off's own: its state is here, or with a live node
		}
		delete(h.moved, tenant)
	}
	states := r.replicas.Take(tenant)
	if len(states) == 0 {
		return false
	}
	if err := r.n.store.Merge(tenant, states); err != nil {
		r.log.Warn("bad replica state", "tenant", tenant, "err", err)
		return false
	}
	r.promoted.Inc()
	return true
}

// tenantsIn lists the tenants s holds (not sealed ones).
func tenantsIn(s *limiter.Store) []string {
	var out []string
	s.Tenants(func(t string) bool {
		out = append(out, t)
		return true
	})
	return out
}

// dropReplica forgets this node's copy of tenant, if replication is on.
func (n *Node) dropReplica(tenant string) {
	if n.repl != nil {
		n.repl.drop(tenant)
	}
}
