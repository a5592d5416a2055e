package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/peer"
)

// raftSetup says where a node's Raft state lives and how it is reached.
type raftSetup struct {
	name string
	// listen is the address the transport binds; gossip helps choose the
	// address to advertise when listen's host is unspecified.
	listen, gossip string
	// dataDir holds raft.db (log and stable store, bbolt) and snapshots/;
	// inMemory keeps both in memory instead.
	dataDir  string
	inMemory bool
	log      *slog.Logger
	// tls, if set, runs the transport over mutual TLS.
	tls *peer.TLS
	// member says whether a node is a live gossip member; with tls, a
	// connection is accepted only from a member or a server of the Raft
	// configuration.
	member func(name string) bool
}

// consensus is a node's Raft instance and what it must close.
type consensus struct {
	raft      *raft.Raft
	fsm       *config.FSM
	transport *raft.NetworkTransport
	addr      string // advertised
	// hadState says the node found a log or snapshot at start: it is (or
	// was) a member already, and must not bootstrap.
	hadState bool
	closers  []io.Closer
}

// openRaft starts Raft over a TCP transport, with the log store the setup
// names. This is the only place that knows which log store is in use.
func openRaft(s raftSetup, f *config.FSM) (*consensus, error) {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      &raftLogWriter{log: s.log.With("component", "raft")},
		DisableTime: true,
	})
	// A transport bound to a specific host advertises what it bound (port
	// 0 picks one); one bound to all interfaces advertises the address
	// Advertise() chooses.
	var adv net.Addr
	if host, port, err := net.SplitHostPort(s.listen); err != nil {
		return nil, fmt.Errorf("raft-addr: %w", err)
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if port == "0" {
			return nil, fmt.Errorf("raft-addr: %q: port 0 needs a specific host", s.listen)
		}
		if adv, err = net.ResolveTCPAddr("tcp", Advertise(s.listen, s.gossip)); err != nil {
			return nil, fmt.Errorf("raft-addr: %w", err)
		}
	}
	var self atomic.Pointer[raft.Raft] // for the transport's check of who connects
	transport, err := newTransport(s, adv, logger, func(name string) bool {
		return (s.member != nil && s.member(name)) || configured(self.Load(), name)
	})
	if err != nil {
		return nil, fmt.Errorf("raft-addr: %w", err)
	}
	c := &consensus{fsm: f, transport: transport, addr: string(transport.LocalAddr()), closers: []io.Closer{transport}}

	var logs raft.LogStore
	var stable raft.StableStore
	var snaps raft.SnapshotStore
	if s.inMemory {
		store := raft.NewInmemStore()
		logs, stable, snaps = store, store, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
			c.close()
			return nil, fmt.Errorf("data-dir: %w", err)
		}
		store, err := raftboltdb.NewBoltStore(filepath.Join(s.dataDir, "raft.db"))
		if err != nil {
			c.close()
			return nil, fmt.Errorf("data-dir: opening the raft log: %w", err)
		}
		c.closers = append(c.closers, store)
		if logs, err = raft.NewLogCache(512, store); err != nil {
			c.close()
			return nil, err
		}
		stable = store
		if snaps, err = raft.NewFileSnapshotStoreWithLogger(s.dataDir, 2, logger); err != nil {
			c.close()
			return nil, fmt.Errorf("data-dir: %w", err)
		}
	}
	if c.hadState, err = raft.HasExistingState(logs, stable, snaps); err != nil {
		c.close()
		return nil, err
	}

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(s.name)
	cfg.Logger = logger
	// Loopback and LAN timings: a leader that loses its quorum steps down
	// within LeaderLeaseTimeout, so a write without quorum fails well
	// within 2 s, and a new leader is elected about a second after the
	// old one dies.
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.CommitTimeout = 20 * time.Millisecond
	if c.raft, err = raft.NewRaft(cfg, f, logs, stable, snaps, transport); err != nil {
		c.close()
		return nil, err
	}
	self.Store(c.raft)
	return c, nil
}

// shutdown stops Raft and closes its stores.
func (c *consensus) shutdown() error {
	err := c.raft.Shutdown().Error()
	c.close()
	return err
}

func (c *consensus) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		_ = c.closers[i].Close()
	}
}

// bootstrap starts a new cluster with servers as its voters. Raft refuses
// it (ErrCantBootstrap) if this node already has state, which makes a
// second bootstrap harmless.
func (c *consensus) bootstrap(servers []raft.Server) error {
	err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

// leader returns the current leader's ID, "" if none is known.
func (c *consensus) leader() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

func (c *consensus) isLeader() bool { return c.raft.State() == raft.Leader }

// raftLogWriter turns hclog's "[LEVEL]  raft: message: k=v" lines into
// leveled slog records.
type raftLogWriter struct{ log *slog.Logger }

func (w *raftLogWriter) Write(p []byte) (int, error) {
	level, msg := leveledLine(p, "raft: ")
	w.log.Log(context.Background(), level, msg) // a log line has no caller context
	return len(p), nil
}

// newTransport is Raft's TCP transport, over mutual TLS when s has a
// certificate: a node that cannot show one of the cluster's CA can neither
// send Raft a message nor read one, and one whose certificate names no node
// that known accepts (a node that has left, or never joined) cannot
// connect.
func newTransport(s raftSetup, adv net.Addr, logger hclog.Logger, known func(name string) bool) (*raft.NetworkTransport, error) {
	if s.tls == nil {
		return raft.NewTCPTransportWithLogger(s.listen, adv, 3, 10*time.Second, logger)
	}
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return nil, err
	}
	if adv == nil {
		adv = ln.Addr()
	}
	server := s.tls.Server()
	server.VerifyConnection = func(cs tls.ConnectionState) error {
		names := cs.PeerCertificates[0].DNSNames // verified by then: there is one
		if slices.ContainsFunc(names, known) {
			return nil
		}
		return fmt.Errorf("raft: the certificate names %q, no member of this cluster", names)
	}
	stream := &tlsStream{Listener: tls.NewListener(ln, server), adv: adv, client: s.tls.ClientAnyNode()}
	return raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, logger), nil
}

// configured reports whether name is a server of r's latest configuration
// (false while r is not yet running).
func configured(r *raft.Raft, name string) bool {
	servers, ok := raftServers(r)
	return ok && slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == name })
}

// otherVoters reports whether Raft has a voter besides self to hand
// leadership to (the last node of a cluster has none); if the
// configuration cannot be read it says yes, and the transfer says why.
func otherVoters(r *raft.Raft, self string) bool {
	servers, ok := raftServers(r)
	return !ok || slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) != self && s.Suffrage == raft.Voter })
}

// raftServers is r's latest configuration, answered at once; ok is false
// without Raft or when it cannot be read.
func raftServers(r *raft.Raft) (servers []raft.Server, ok bool) {
	if r == nil {
		return nil, false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil, false
	}
	return f.Configuration().Servers, true
}

// tlsStream is a raft.StreamLayer over mutual TLS. Raft dials addresses,
// not names: the other end must show a certificate of the cluster's CA.
type tlsStream struct {
	net.Listener
	adv    net.Addr
	client *tls.Config
}

func (s *tlsStream) Addr() net.Addr { return s.adv }

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.client)
}
