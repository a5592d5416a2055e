package gossip

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member is one node of the cluster as gossip sees it.
type Member struct {
	Name string `json:"name"`
	// State is alive, suspect (alive to gossip, but this node's last call
	// to it failed), dead or left.
	State      string `json:"state"`
	GossipAddr string `json:"gossip_addr"`
	APIAddr    string `json:"api_addr"`
	GRPCAddr   string `json:"grpc_addr"`
	PeerAddr   string `json:"peer_addr,omitempty"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	Ready      bool   `json:"ready"`
	Version    string `json:"version,omitempty"`
	// Leaving says the member announced a graceful leave.
	Leaving bool `json:"-"`
}

// Meta is what a node tells the others about itself, as gossip node
// metadata (at most 512 bytes).
type Meta struct {
	API  string `json:"api"`
	GRPC string `json:"grpc"`
	Peer string `json:"peer,omitempty"`
	Raft string `json:"raft,omitempty"`
	HTTP string `json:"http,omitempty"`
	// Leaving is set just before a graceful leave, so that the others can
	// tell a node that left from one that died (gossip's leave event does
	// not say).
	Leaving bool `json:"leaving,omitempty"`
	// Ready is set once the node has joined and built its ring; only ready
	// nodes own tenants, so nobody hands state to, or forwards to, a node
	// that does not yet know the cluster.
	Ready bool `json:"ready,omitempty"`
	// Version is the node's build (tollgate version), so a rolling
	// upgrade shows who runs what.
	Version string `json:"version,omitempty"`
}

// Membership runs gossip and keeps the member list, keyed by node name.
// The list is built from gossip's events, which carry copies of the nodes:
// memberlist updates the nodes that Members returns in place, so reading
// those would race with it.
type Membership struct {
	ml     *memberlist.Memberlist
	meta   *metaDelegate
	events chan memberlist.NodeEvent
	log    *slog.Logger
	self   string

	mu    sync.Mutex
	table map[string]Member // every node heard of, departed ones included
}

// gossipConfig tunes memberlist's LAN defaults so that on a small loopback
// or LAN cluster a crashed node is declared dead within about a second
// instead of about six: probe every 200 ms, and the suspicion timeout is its
// minimum, 3 × 200 ms for up to ten nodes, once another member confirms
// (at most twice that): time enough for a node stalled by a pause to
// refute the suspicion. A full state exchange every 2 s (memberlist scales
// it up past 32 nodes) heals a node that missed a metadata broadcast, such
// as another node's readiness, within seconds rather than tens of them.
//
// DeadNodeReclaimTime is how long the old incarnation of a node must have
// been dead before the node, restarted under its name on another address,
// may take its name back.
const DeadNodeReclaimTime = 5 * time.Second

func gossipConfig(name, addr string, meta *metaDelegate, events chan memberlist.NodeEvent, libLog *log.Logger) (*memberlist.Config, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: bad port", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	cfg := memberlist.DefaultLANConfig()
	cfg.Name = name
	cfg.BindAddr, cfg.BindPort = host, port
	cfg.AdvertisePort = port
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.ProbeTimeout = 100 * time.Millisecond
	cfg.SuspicionMult = 3
	cfg.SuspicionMaxTimeoutMult = 2
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.PushPullInterval = 2 * time.Second
	cfg.GossipToTheDeadTime = 5 * time.Second
	cfg.TCPTimeout = 2 * time.Second
	cfg.DeadNodeReclaimTime = DeadNodeReclaimTime
	cfg.Delegate = meta
	cfg.Events = &memberlist.ChannelEventDelegate{Ch: events}
	cfg.Logger = libLog
	return cfg, nil
}

// Security is what keeps strangers out of the member list.
type Security struct {
	// Keys encrypt and authenticate every gossip message (AES-GCM, 16,
	// 24 or 32 bytes each). The first is the one sent with; all are
	// accepted, so a key is rotated in by adding it, making it first on
	// every node, then removing the old one. None: gossip in the clear.
	Keys [][]byte
	// Label is prepended to every message; a node with another label is
	// not heard. It keeps apart clusters that share a network.
	Label string
}

// New starts gossip for the node name on addr, with meta as its metadata.
// log gets Membership's own lines; libLog memberlist's, which come as
// "[LEVEL] memberlist: ..." text.
func New(name, addr string, meta Meta, sec Security, log *slog.Logger, libLog *log.Logger) (*Membership, error) {
	// Gossip drops metadata over its limit, and with it every address:
	// refuse to start instead (measured with the flags that change later).
	full := meta
	full.Leaving, full.Ready = true, true
	if b, _ := json.Marshal(full); len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, over gossip's %d: shorten the advertised addresses", len(b), memberlist.MetaMaxSize)
	}
	d := &metaDelegate{meta: meta}
	events := make(chan memberlist.NodeEvent, 256)
	log = log.With("component", "gossip")
	cfg, err := gossipConfig(name, addr, d, events, libLog)
	if err != nil {
		return nil, err
	}
	if len(sec.Keys) > 0 {
		// Incoming messages must be encrypted (memberlist's default): a
		// node without a key is not let in, nor one with another.
		if cfg.Keyring, err = memberlist.NewKeyring(sec.Keys, sec.Keys[0]); err != nil {
			return nil, fmt.Errorf("gossip key: %w", err)
		}
	}
	cfg.Label = sec.Label
	ml, err := memberlist.Create(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", addr, err)
	}
	return &Membership{ml: ml, meta: d, events: events, log: log, self: name, table: map[string]Member{}}, nil
}

// Addr returns the address gossip listens on (with the real port when the
// configured one was 0).
func (m *Membership) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Run consumes membership events until ctx ends, calling changed after
// each batch of events. One goroutine, so changes are applied in order.
func (m *Membership) Run(ctx context.Context, changed func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-m.events:
			m.note(ev)
			// Take what else has arrived, so that a burst (a join that
			// learns many members at once) rebuilds the ring once.
			m.drain()
			changed()
		}
	}
}

func (m *Membership) note(ev memberlist.NodeEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem := memberOf(ev.Node)
	switch ev.Event {
	case memberlist.NodeLeave:
		mem.State = "dead"
		if prev, ok := m.table[mem.Name]; (ok && prev.Leaving) || mem.Leaving || ev.Node.State == memberlist.StateLeft {
			mem.State = "left"
		}
		m.log.Info("member gone", "member", mem.Name, "state", mem.State)
	case memberlist.NodeJoin:
		m.log.Info("member joined", "member", mem.Name, "addr", mem.GossipAddr)
	}
	m.table[mem.Name] = mem
}

// drain applies the events that are waiting, without blocking.
func (m *Membership) drain() {
	for {
		select {
		case ev := <-m.events:
			m.note(ev)
		default:
			return
		}
	}
}

// Join contacts the given gossip addresses until one answers or ctx ends,
// backing off from 100 ms to 5 s between rounds.
func (m *Membership) Join(ctx context.Context, addrs []string) error {
	backoff := 100 * time.Millisecond
	for {
		n, err := m.ml.Join(addrs)
		if n > 0 {
			m.log.Info("joined cluster", "contacted", n)
			return nil
		}
		m.log.Warn("join failed; retrying", "addrs", addrs, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Live returns the members gossip counts as alive (a suspect one too: it
// may only be slow; checks to it fail over by policy until it is declared
// dead). This node is always among them.
func (m *Membership) Live() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.table))
	for _, mem := range m.table {
		if mem.State == "alive" && mem.Name != m.self {
			out = append(out, mem)
		}
	}
	return append(out, m.selfMember())
}

// All returns every member heard of, the departed ones included.
func (m *Membership) All() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.table))
	for _, mem := range m.table {
		if mem.Name != m.self {
			out = append(out, mem)
		}
	}
	return append(out, m.selfMember())
}

// selfMember describes this node from its own metadata, which is newer
// than what gossip has echoed back. The caller holds m.mu.
func (m *Membership) selfMember() Member {
	mem := m.table[m.self]
	mem.Name, mem.State = m.self, "alive"
	if mem.GossipAddr == "" {
		mem.GossipAddr = m.Addr()
	}
	meta := m.meta.get()
	mem.APIAddr, mem.GRPCAddr, mem.PeerAddr, mem.RaftAddr, mem.HTTPAddr, mem.Ready = meta.API, meta.GRPC, meta.Peer, meta.Raft, meta.HTTP, meta.Ready
	return mem
}

// WaitSynced waits (up to timeout) until Run has applied the events of a
// join: as many members alive in the list as gossip counts. It only looks:
// events must be applied by one goroutine, in order, or a member's older
// state (joined, not yet ready) could land after its newer one and stay,
// as gossip sends nothing more about a member that does not change.
func (m *Membership) WaitSynced(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		alive := 0
		for _, mem := range m.table {
			if mem.State == "alive" {
				alive++
			}
		}
		m.mu.Unlock()
		if alive >= m.ml.NumMembers() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func metaOf(n *memberlist.Node) Meta {
	var meta Meta
	_ = json.Unmarshal(n.Meta, &meta) // a node without our metadata has no addresses to show
	return meta
}

func memberOf(n *memberlist.Node) Member {
	meta := metaOf(n)
	return Member{
		Leaving:    meta.Leaving,
		Name:       n.Name,
		State:      "alive",
		GossipAddr: n.Address(),
		APIAddr:    meta.API,
		GRPCAddr:   meta.GRPC,
		PeerAddr:   meta.Peer,
		RaftAddr:   meta.Raft,
		HTTPAddr:   meta.HTTP,
		Ready:      meta.Ready,
		Version:    meta.Version,
	}
}

// Leave sends gossip's leave message (after AnnounceLeaving) and waits up
// to timeout for it to go out.
func (m *Membership) Leave(timeout time.Duration) error { return m.ml.Leave(timeout) }

// Shutdown stops gossip without a leave message.
func (m *Membership) Shutdown() error { return m.ml.Shutdown() }

// AnnounceLeaving tells the others this node is about to leave, so that
// they stop counting it as an owner.
func (m *Membership) AnnounceLeaving(timeout time.Duration) {
	m.meta.setLeaving()
	if err := m.ml.UpdateNode(timeout); err != nil {
		m.log.Warn("announcing the leave", "err", err)
	}
}

// AnnounceReady tells the others this node now owns tenants.
func (m *Membership) AnnounceReady(timeout time.Duration) {
	m.meta.setReady()
	if err := m.ml.UpdateNode(timeout); err != nil {
		m.log.Warn("announcing readiness", "err", err)
	}
}

// metaDelegate serves this node's metadata; it carries no other state.
type metaDelegate struct {
	mu   sync.Mutex
	meta Meta
}

func (d *metaDelegate) setLeaving() {
	d.mu.Lock()
	d.meta.Leaving = true
	d.mu.Unlock()
}

func (d *metaDelegate) get() Meta {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}

func (d *metaDelegate) setReady() {
	d.mu.Lock()
	d.meta.Ready = true
	d.mu.Unlock()
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	b, err := json.Marshal(d.meta)
	d.mu.Unlock()
	if err != nil || len(b) > limit {
		return nil
	}
	return b
}
func (*metaDelegate) NotifyMsg([]byte)                           {}
func (*metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (*metaDelegate) LocalState(join bool) []byte                { return nil }
func (*metaDelegate) MergeRemoteState(buf []byte, join bool)     {}
