package peer

import (
	"cmp"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/cluster/gossip"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// The peer plane's HTTP/2 flow-control windows, per stream and per
// connection, fixed on both ends. By default gRPC sizes them from the
// link's bandwidth-delay product, which it measures with a ping after
// (nearly) each burst of data it receives; a forwarding stream is a steady
// run of small batches, so that was a ping and its answer, a write and a
// read on each node, for every few checks. A fixed window turns the
// measuring off (either one does, for the whole connection, so both are
// set); these are far more than a batch of checks or a chunk of a
// hand-off needs in flight.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// ServerOptions are the peer plane's server side of the fixed windows.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow)}
}

// ErrNoPeer means a node is not (or no longer) a member with a gRPC address.
var ErrNoPeer = errors.New("no such peer")

// Pool holds one gRPC connection per peer, keyed by node name (never
// by address: two nodes may share a host).
type Pool struct {
	// linger is how long the connection to a node that has gone stays
	// open for the calls in flight on it: a node that leaves gracefully
	// answers them.
	linger time.Duration
	// tls, if set, is the mutual TLS every call is made with; each peer
	// must show a certificate that bears its name.
	tls *TLS

	mu      sync.Mutex
	addrs   map[string]string
	conns   map[string]*peerConn
	leaving map[*grpc.ClientConn]bool // connections to departed peers, lingering
	failing map[string]time.Time      // peers whose last call failed, since when
}

type peerConn struct {
	addr   string
	conn   *grpc.ClientConn
	client peerv1.PeerClient
}

// NewPool returns an empty pool; tls nil calls in the clear.
func NewPool(linger time.Duration, tls *TLS) *Pool {
	return &Pool{linger: linger, tls: tls, addrs: map[string]string{}, conns: map[string]*peerConn{}, leaving: map[*grpc.ClientConn]bool{}, failing: map[string]time.Time{}}
}

// Update sets the members' gRPC addresses; connections to nodes that are
// gone or have moved are closed once the calls on them have had linger to
// end.
func (p *Pool) Update(members []gossip.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addrs = make(map[string]string, len(members))
	for _, m := range members {
		// A member that names no peer address serves the peer plane on
		// its gRPC port, as nodes did before the two were apart.
		if addr := cmp.Or(m.PeerAddr, m.GRPCAddr); addr != "" {
			p.addrs[m.Name] = addr
		}
	}
	for name, c := range p.conns {
		if p.addrs[name] != c.addr {
			p.leaving[c.conn] = true
			time.AfterFunc(p.linger, func() { p.closeLingering(c.conn) })
			delete(p.conns, name)
		}
	}
	for name := range p.failing {
		if _, ok := p.addrs[name]; !ok {
			delete(p.failing, name)
		}
	}
}

func (p *Pool) closeLingering(conn *grpc.ClientConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leaving[conn] {
		delete(p.leaving, conn)
		conn.Close()
	}
}

// Report records how a call to a peer went.
func (p *Pool) Report(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.failing, name)
	} else if _, ok := p.failing[name]; !ok {
		p.failing[name] = time.Now()
	}
}

// Suspect reports whether the last call to name failed.
func (p *Pool) Suspect(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.failing[name]
	return ok
}

// Has reports whether name is a live member with a gRPC address.
func (p *Pool) Has(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.addrs[name]
	return ok
}

// Client returns a client for the named peer, connecting lazily.
func (p *Pool) Client(name string) (peerv1.PeerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[name]; c != nil {
		return c.client, nil
	}
	addr, ok := p.addrs[name]
	if !ok {
		return nil, ErrNoPeer
	}
	creds := insecure.NewCredentials()
	if p.tls != nil {
		creds = credentials.NewTLS(p.tls.Client(name))
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow))
	if err != nil {
		return nil, err
	}
	c := &peerConn{addr: addr, conn: conn, client: peerv1.NewPeerClient(conn)}
	p.conns[name] = c
	return c.client, nil
}

func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, c := range p.conns {
		c.conn.Close()
		delete(p.conns, name)
	}
	for conn := range p.leaving {
		conn.Close()
		delete(p.leaving, conn)
	}
}
