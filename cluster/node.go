package cluster

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/cluster/ring"
	"github.com/tollgate/tollgate/limiter"
)

// Config is what a Node needs; cmd/tollgate fills it from flags, env and file.
type Config struct {
	NodeName string
	// MaxEntries, MaxLeases and IdleTTL bound the limit store (see
	// limiter.Options).
	MaxEntries int
	MaxLeases  int
	IdleTTL    time.Duration
	// SweepInterval is how often idle entries are looked for; 30s if zero.
	SweepInterval time.Duration
	Clock         limiter.Clock
	Logger        *slog.Logger

	// GossipAddr is where gossip listens; empty runs the node standalone
	// (it owns every tenant).
	GossipAddr string
	// Join lists gossip addresses of nodes to join, retried until one
	// answers.
	Join []string
	// Gossip keeps other processes out of the member list, and so out of
	// the ring and Raft: only members with a key of the keyring get in.
	Gossip gossip.Security
	// TLS, if set, is the node's certificate and the cluster's CA: the
	// peer plane and Raft then run over mutual TLS, and a peer speaks
	// only for the node its certificate names.
	TLS *peer.TLS
	// The addresses other nodes and clients reach this node at, carried in
	// its gossip metadata.
	APIAddr, GRPCAddr, RaftAddr, HTTPAddr string
	// PeerAddr is where the other nodes reach this one's peer service.
	PeerAddr string
	Forward  peer.ForwardConfig
	// HandoffWindow is how long after a membership change a node looks
	// for tenant state in flight; 5s if zero.
	HandoffWindow time.Duration

	// RaftListen is where Raft listens; empty runs the node without a
	// replicated configuration (inline-limit checks only).
	RaftListen string
	// DataDir holds the Raft log and snapshots unless InMemory.
	DataDir  string
	InMemory bool
	// BootstrapExpect is how many members form a new cluster; 0 joins an
	// existing one. A standalone node always forms its own.
	BootstrapExpect int
	// UsageFlushInterval is how often usage is written to Raft: a crash
	// loses at most this much. 1s if zero.
	UsageFlushInterval time.Duration
	// Upstreams is what this node's gateway lets providers use; the admin
	// operations refuse a provider it would not call.
	Upstreams UpstreamPolicy
	// MaxPendingSettles bounds the gateway settlements a node holds: past
	// it the node takes no new reservation until its owners catch up
	// (those it holds are never dropped). 100,000 if zero.
	MaxPendingSettles int
	// MetricsTenants is how many (tenant, limit) pairs get series of their
	// own in tollgate_throttled_total (the rest count as "other"); 100 if
	// zero, none if negative.
	MetricsTenants int
	// Build is what this node's binary is; it goes into gossip (every
	// member's version in the cluster view) and tollgate_build_info.
	Build Build
	// ReplicateInterval is how often the state of the tenants this node
	// owns is copied to their successors on the ring, so that an owner's
	// crash costs at most this much of their use; 100ms if zero.
	// NoReplication turns the copies off.
	ReplicateInterval time.Duration
	NoReplication     bool
}

// Build describes a binary: its module version ("(devel)" for a build
// from a checkout), the VCS revision and time it was built from, whether
// the tree had changes, and the Go that built it.
type Build struct {
	Version, Revision, Time, GoVersion string
	Modified                           bool
}

// Node answers checks: it decides for the tenants it owns and forwards the
// rest to their owners.
type Node struct {
	cfg      Config
	name     string
	store    *limiter.Store // the tenants this node owns
	fallback *limiter.Store // degraded decisions while an owner is unreachable
	metrics  *metrics
	// throttled counts refusals by tenant and limit, bounded.
	throttled *throttled
	log       *slog.Logger

	view    atomic.Pointer[ringView]
	ringMu  sync.Mutex // one ring rebuild at a time
	leaving atomic.Bool
	members *gossip.Membership // nil when standalone
	peers   *peer.Pool
	fwd     *peer.Forwarder
	handoff *handoff
	repl    *replication // nil with NoReplication

	fsm   *config.FSM  // the replicated configuration, on every node
	raft  *consensus   // nil without RaftListen
	usage *usageBuffer // usage admitted here and not yet committed
	// settles are gateway settlements not yet applied; settled remembers
	// those applied here lately.
	settles *settleQueue
	settled settleDedup
	// journal keeps the gateway requests admitted here until their owners
	// have them (nil in memory); left is what a previous run left there.
	journal     *journal
	journalLeft []*journalEntry
	// raftMetrics is nil without Raft.
	raftMetrics *raftMetrics

	ready  atomic.Bool
	pushes chan struct{}   // asks housekeep to hand off what is not ours
	ctx    context.Context // from Start: the node's lifetime
	wg     sync.WaitGroup
}

// NewNode creates a node with its own Prometheus registry. Start brings it
// up.
func NewNode(cfg Config) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.HandoffWindow <= 0 {
		cfg.HandoffWindow = 5 * time.Second
	}
	if cfg.UsageFlushInterval <= 0 {
		cfg.UsageFlushInterval = time.Second
	}
	if cfg.MaxPendingSettles <= 0 {
		cfg.MaxPendingSettles = 100_000
	}
	if cfg.MetricsTenants == 0 {
		cfg.MetricsTenants = 100
	}
	if cfg.ReplicateInterval <= 0 {
		cfg.ReplicateInterval = 100 * time.Millisecond
	}
	cfg.Forward.SetDefaults()
	opts := limiter.Options{Clock: cfg.Clock, MaxEntries: cfg.MaxEntries, MaxLeases: cfg.MaxLeases, IdleTTL: cfg.IdleTTL}
	owned := opts
	var n *Node
	replicate := !cfg.NoReplication && cfg.GossipAddr != "" // standalone, there is nobody to copy to
	if replicate {
		owned.TrackChanges = true
		owned.OnChangeBatch = func() { n.repl.nudge() }
	}
	store := limiter.NewStore(owned)
	n = &Node{
		cfg:      cfg,
		name:     cfg.NodeName,
		store:    store,
		fallback: limiter.NewStore(opts),
		metrics:  newMetrics(store),
		log:      cfg.Logger.With("component", "node"),
		peers:    peer.NewPool(2*cfg.Forward.Timeout, cfg.TLS),
		pushes:   make(chan struct{}, 1),
		fsm:      config.NewFSM(),
		usage:    newUsageBuffer(),
		settles:  newSettleQueue(),
	}
	n.handoff = newHandoff(n, cfg.HandoffWindow, cfg.Logger)
	if replicate {
		n.repl = newReplication(n, cfg.ReplicateInterval, opts)
	}
	n.metrics.registerBuild(cfg.Build)
	n.throttled = newThrottled(n.metrics.registry, max(cfg.MetricsTenants, 0))
	n.metrics.registerSettles(n.settles.pending)
	n.metrics.registerHandoff(n.handoff.pending)
	n.setRing(ring.New([]string{n.name}, nil))
	return n
}

// ringView is the ring this node routes by, and the same ring without this
// node: who owned a tenant before this node joined (see handoff.settle).
type ringView struct {
	ring, others *ring.Ring
}

// setRing swaps in a new ring and returns the old one.
func (n *Node) setRing(r *ring.Ring) *ring.Ring {
	old := n.view.Swap(&ringView{ring: r, others: r.Without(n.name)})
	if old == nil {
		return nil
	}
	return old.ring
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Registry returns the node's Prometheus registry.
func (n *Node) Registry() *prometheus.Registry { return n.metrics.registry }

func (n *Node) currentRing() *ring.Ring { return n.view.Load().ring }

// RingSize returns how many nodes own tenants in this node's view.
func (n *Node) RingSize() int { return n.currentRing().Len() }

// Owner returns the node that owns tenant in this node's view.
func (n *Node) Owner(tenant string) string { return n.currentRing().Owner(tenant) }

// Start brings the node up: gossip (joining in the background), the
// forwarder, and the periodic sweep. Everything it starts stops when ctx
// ends; Wait waits for that, Close releases the rest.
func (n *Node) Start(ctx context.Context) error {
	n.ctx = ctx
	if !n.cfg.InMemory && n.cfg.DataDir != "" {
		j, left, err := openJournal(n.cfg.DataDir, n.cfg.Logger.With("component", "journal"))
		if err != nil {
			return err
		}
		j.register(n.metrics.registry)
		n.journal, n.journalLeft = j, left
	}
	n.fwd = peer.NewForwarder(ctx, n.cfg.Forward, n.name, n.peers, n.metrics.observeBatch, n.settleAbandoned)
	if n.cfg.RaftListen != "" {
		// Raft first: gossip carries the address it got.
		c, err := openRaft(raftSetup{name: n.name, listen: n.cfg.RaftListen, gossip: n.cfg.GossipAddr,
			dataDir: n.cfg.DataDir, inMemory: n.cfg.InMemory, log: n.cfg.Logger, tls: n.cfg.TLS, member: n.peers.Has}, n.fsm)
		if err != nil {
			n.closeJournal()
			return err
		}
		n.raft = c
		n.cfg.RaftAddr = c.addr
		n.raftMetrics = n.metrics.registerRaft(c.isLeader, n.fsm.Applied, n.usage.pendingRows)
	}
	if n.cfg.GossipAddr != "" {
		// A node that starts a cluster owns tenants at once; one that joins
		// only once it knows the others (see joinCluster).
		meta := gossip.Meta{API: n.cfg.APIAddr, GRPC: n.cfg.GRPCAddr, Peer: n.cfg.PeerAddr, Raft: n.cfg.RaftAddr, HTTP: n.cfg.HTTPAddr, Ready: len(n.cfg.Join) == 0, Version: n.cfg.Build.Version}
		// memberlist logs text lines; ours get their level from the tag.
		libLog := slog.NewLogLogger(&libraryLogHandler{log: n.cfg.Logger.With("component", "gossip"), prefix: "memberlist: "}, slog.LevelDebug)
		m, err := gossip.New(n.name, n.cfg.GossipAddr, meta, n.cfg.Gossip, n.cfg.Logger, libLog)
		if err != nil {
			n.closeRaft()
			n.closeJournal()
			return err
		}
		n.members = m
		n.metrics.registerMembers(n.countMembers)
		n.wg.Go(func() { m.Run(ctx, n.membersChanged) })
		n.membersChanged()
	}
	n.wg.Go(func() { n.housekeep(ctx) })
	n.wg.Go(func() { n.runSettler(ctx) })
	if n.repl != nil {
		n.wg.Go(func() { n.repl.run(ctx) })
	}
	if n.journal != nil {
		n.wg.Go(func() { n.journal.run(ctx) })
	}
	if n.raft != nil {
		n.wg.Go(func() { n.manageRaft(ctx) })
		n.wg.Go(func() { n.runUsageFlusher(ctx) })
	}
	if n.members == nil || len(n.cfg.Join) == 0 {
		n.becomeReady()
		return nil
	}
	n.wg.Go(func() { n.joinCluster(ctx) })
	return nil
}

// joinCluster joins through the configured addresses, then builds the ring
// of the nodes already there (until now this node forwards every check),
// opens the window in which it pulls the tenants it takes over, and
// announces itself ready, which makes it an owner.
func (n *Node) joinCluster(ctx context.Context) {
	if err := n.members.Join(ctx, n.cfg.Join); err != nil {
		return
	}
	n.members.WaitSynced(2 * time.Second)
	n.membersChanged()
	n.handoff.joined()
	n.members.AnnounceReady(2 * time.Second)
	n.membersChanged()
	n.becomeReady()
}

// becomeReady marks the node ready once it has found its owners, and
// settles what a previous run left in the journal, now that the
// settlements reach them.
func (n *Node) becomeReady() {
	n.ready.Store(true)
	left := n.journalLeft
	n.journalLeft = nil
	n.resettle(left)
}

// requestPush asks for a hand-off of every tenant this node holds but does
// not own; requests that arrive while one is pending are one request.
func (n *Node) requestPush() {
	select {
	case n.pushes <- struct{}{}:
	default:
	}
}

// housekeep runs hand-offs, prunes hand-off bookkeeping and sweeps idle
// tenants, until ctx ends.
func (n *Node) housekeep(ctx context.Context) {
	t := time.NewTicker(min(n.cfg.SweepInterval, n.cfg.HandoffWindow))
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.pushes:
			_ = n.handoff.push(ctx) // what is left, prune sends again
			continue
		case <-t.C:
		}
		n.handoff.prune()
		if time.Since(lastSweep) >= n.cfg.SweepInterval {
			lastSweep = time.Now()
			removed := n.store.Sweep() + n.fallback.Sweep()
			if n.repl != nil {
				removed += n.repl.replicas.Sweep()
			}
			if removed > 0 {
				n.log.Debug("swept idle tenants", "removed", removed)
			}
		}
	}
}

// membersChanged rebuilds the ring from the live, ready members and hands
// off what this node no longer owns.
func (n *Node) membersChanged() {
	n.ringMu.Lock()
	defer n.ringMu.Unlock()
	live := n.members.Live()
	names := make([]string, 0, len(live))
	leaving := map[string]bool{}
	for _, m := range live {
		gone := m.Leaving || (m.Name == n.name && n.leaving.Load())
		if m.Ready && !gone {
			names = append(names, m.Name)
		}
		leaving[m.Name] = gone
	}
	ring := ring.New(names, nil)
	var died *death
	if n.repl != nil {
		// Before the new ring is in use: its first checks for a dead
		// owner's tenants start from their copies here.
		if dead := diedIn(n.name, n.currentRing(), ring, leaving); len(dead) > 0 {
			died = n.repl.ownersDied(n.currentRing(), ring, dead)
		}
	}
	old := n.setRing(ring)
	if died != nil {
		n.repl.promoteDead(died)
	}
	// Only after the swap: a forward chosen by the old ring still finds
	// its peer, and one that does not is routed again (see route).
	n.peers.Update(live)
	n.fwd.Retire(live)
	if !sameNodes(old, ring) {
		n.log.Info("ring changed", "members", ring.Nodes())
		n.handoff.ringChanged(old, ring, leaving)
		// Pushing waits on peers; the event loop must not.
		n.requestPush()
	}
}

func sameNodes(a, b *ring.Ring) bool { return slices.Equal(a.Nodes(), b.Nodes()) }

// diedIn returns the owners of old, other than self, that next has
// dropped without a graceful leave: gone from gossip, or back there but
// not ready (a process that restarted, its memory gone).
func diedIn(self string, old, next *ring.Ring, leaving map[string]bool) map[string]bool {
	dead := map[string]bool{}
	for _, name := range old.Nodes() {
		if !next.Contains(name) && !leaving[name] && name != self {
			dead[name] = true
		}
	}
	return dead
}

// Members returns every member this node knows of, with its state.
func (n *Node) Members() []gossip.Member {
	if n.members == nil {
		return []gossip.Member{{Name: n.name, State: "alive", APIAddr: n.cfg.APIAddr, GRPCAddr: n.cfg.GRPCAddr, PeerAddr: n.cfg.PeerAddr, Ready: true, Version: n.cfg.Build.Version}}
	}
	all := n.members.All()
	for i := range all {
		if all[i].State == "alive" && n.peers.Suspect(all[i].Name) {
			all[i].State = "suspect"
		}
	}
	return all
}

func (n *Node) countMembers(state string) int {
	c := 0
	for _, m := range n.Members() {
		if m.State == state {
			c++
		}
	}
	return c
}

// Leave hands every tenant to its next owner and leaves the cluster
// gracefully. Call it before stopping the servers: peers may still forward
// checks here until they hear of the leave, and this node passes them on.
func (n *Node) Leave(ctx context.Context) {
	n.ready.Store(false)
	// Settlements of requests served here go to their owners while this
	// node still owns its share: its own are applied before they move. A
	// third of the time left, so the hand-off and the last flush keep the
	// rest.
	drainCtx, cancel := context.WithTimeout(ctx, time.Until(deadlineOr(ctx, 6*time.Second))/3)
	if err := n.drainSettles(drainCtx); err != nil {
		n.log.Warn("settling gateway requests on stop", "err", err)
	}
	cancel()
	if n.members == nil {
		if err := n.FlushUsage(ctx); err != nil {
			n.log.Warn("flushing usage on stop", "err", err)
		}
		return
	}
	// First tell the others, who stop counting this node as an owner and
	// pull from it what they meet before its pushes arrive; then stop
	// owning here and push everything; then leave gossip.
	n.members.AnnounceLeaving(time.Second)
	n.ringMu.Lock()
	n.leaving.Store(true)
	n.setRing(n.currentRing().Without(n.name))
	n.ringMu.Unlock()
	n.handoff.waitPulls(ctx)
	if left := n.handoff.push(ctx); left > 0 {
		n.log.Warn("could not hand off every tenant before the shutdown timeout; their owners start them afresh", "tenants", left)
	}
	// Usage admitted while the hand-off ran, then Raft leadership, then
	// this node's place in Raft, which the leader gives up.
	if err := n.FlushUsage(ctx); err != nil {
		n.log.Warn("flushing usage on leave", "err", err)
	}
	if n.raft != nil {
		if n.raft.isLeader() && otherVoters(n.raft.raft, n.name) {
			if err := n.raft.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("handing over raft leadership", "err", err)
			}
		}
		n.depart(ctx)
	}
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.members.Leave(timeout); err != nil {
		n.log.Warn("leaving the cluster", "err", err)
	}
}

// deadlineOr is ctx's deadline, or d from now if it has none.
func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if t, ok := ctx.Deadline(); ok {
		return t
	}
	return time.Now().Add(d)
}

// Wait blocks until the goroutines started by Start have returned; their
// context must have ended.
func (n *Node) Wait() {
	n.wg.Wait()
	n.settles.senders.Wait()
	if n.fwd != nil {
		n.fwd.Wait()
	}
}

// Crash silences the node at once, as a crash would: not ready, and gone
// from gossip without a leave or a hand-off. For failure tests in one
// process; stop its context, Wait and Close after it.
func (n *Node) Crash() {
	n.ready.Store(false)
	if n.journal != nil {
		n.journal.crash()
	}
	if n.members != nil {
		_ = n.members.Shutdown()
	}
}

// Close releases gossip, Raft and peer connections, after Wait.
func (n *Node) Close() {
	if n.members != nil {
		if err := n.members.Shutdown(); err != nil {
			n.log.Warn("stopping gossip", "err", err)
		}
	}
	n.closeRaft()
	n.peers.Close()
	n.closeJournal()
}

func (n *Node) closeJournal() {
	if n.journal != nil {
		n.journal.close()
	}
}

func (n *Node) closeRaft() {
	if n.raft != nil {
		if err := n.raft.shutdown(); err != nil {
			n.log.Warn("stopping raft", "err", err)
		}
	}
}

// GossipAddr returns the address gossip listens on, or "" when standalone.
func (n *Node) GossipAddr() string {
	if n.members == nil {
		return ""
	}
	return n.members.Addr()
}

// SetReady marks the node ready (or not) for /readyz.
func (n *Node) SetReady(ready bool) { n.ready.Store(ready) }

// Ready reports whether the node takes traffic.
func (n *Node) Ready() bool { return n.ready.Load() }
