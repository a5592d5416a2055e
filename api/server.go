package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/peer"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ServerConfig is a node and where it listens.
type ServerConfig struct {
	Node cluster.Config
	// APIListen, GRPCListen and PeerListen are listen addresses; port 0
	// picks a free port. The node advertises what it actually got. The
	// peer plane (node-to-node calls) has a port of its own, so that the
	// public gRPC port serves only the public services.
	APIListen, GRPCListen, PeerListen string
	// Auth guards the admin API and the check API.
	Auth Auth
	// ReadTimeout bounds the reading of one API request, body included:
	// a client that trickles its body is cut off. 10s if zero.
	ReadTimeout time.Duration
	// Reflection serves gRPC server reflection on the public port, so
	// that grpcurl and the like find the services without .proto files.
	Reflection bool
	// RLS is how Envoy's rate limit service answers.
	RLS RLSConfig
}

// Bounds on what one client may hold of a node's servers.
const (
	defaultReadTimeout = 10 * time.Second
	// apiWriteTimeout bounds writing one API answer; none is large.
	apiWriteTimeout = 30 * time.Second
	// maxStreams bounds the concurrent calls on one gRPC connection; a
	// peer holds one check stream and a few calls.
	maxStreams = 1024
	// maxRecvBytes bounds one gRPC message (gRPC's default, said aloud):
	// the largest, a hand-off of many tenants, stays below it.
	maxRecvBytes = 4 << 20
)

// Server is one node with its HTTP API and gRPC servers.
type Server struct {
	Node *cluster.Node // set once the node part has started
	cfg  ServerConfig

	apiLn, grpcLn, peerLn net.Listener
	api                   *http.Server
	grpc                  *grpc.Server       // the public services
	health                *health.Server     // grpc.health.v1 on the public port
	healthDone            chan struct{}      // ends followReady
	peer                  *grpc.Server       // the peer service
	cancel                context.CancelFunc // ends the node's background work
	errc                  chan error
	stop                  func(context.Context) error // set by StartServer
	// the addresses the node advertises
	apiAddr, grpcAddr, peerAddr string
}

// NewServer prepares a node and its servers; start them with Parts (or
// StartServer, which does just that).
func NewServer(cfg ServerConfig) *Server {
	if cfg.Node.Logger == nil {
		cfg.Node.Logger = slog.Default()
	}
	return &Server{cfg: cfg, errc: make(chan error, 3)}
}

// StartServer starts a node and its servers (see Parts). Stop it with
// Shutdown.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	s := NewServer(cfg)
	stop, err := Start(ctx, s.Parts())
	if err != nil {
		return nil, err
	}
	s.stop = stop
	return s, nil
}

// Parts are the node and its servers in the order they start; they stop in
// reverse, which is the order that loses nothing.
func (s *Server) Parts() []Part {
	return []Part{
		// The ports first, so that the node advertises the ones it got.
		{Name: "listeners", Start: s.listen, Stop: s.closeListeners},
		// The node: Raft, then gossip (joining in the background), and its
		// hand-off, settling and usage flushing. It stops last.
		{Name: "node", Start: s.startNode, Stop: s.stopNode},
		// The API and gRPC servers. At stop they drain, after the leave.
		{Name: "servers", Start: s.serve, Stop: s.drain},
		// At stop only, while the servers are up to pass checks on (peers
		// forward here until they hear of the leave): hand every tenant to
		// its next owner, flush usage, leave Raft and gossip.
		{Name: "membership", Stop: s.leave},
	}
}

func (s *Server) listen(context.Context) error {
	var err error
	if s.apiLn, err = net.Listen("tcp", s.cfg.APIListen); err != nil {
		return fmt.Errorf("api-addr: %w", err)
	}
	if s.grpcLn, err = net.Listen("tcp", s.cfg.GRPCListen); err != nil {
		s.apiLn.Close() // a part that fails to start undoes itself
		return fmt.Errorf("grpc-addr: %w", err)
	}
	if s.peerLn, err = net.Listen("tcp", s.cfg.PeerListen); err != nil {
		s.apiLn.Close()
		s.grpcLn.Close()
		return fmt.Errorf("peer-addr: %w", err)
	}
	return nil
}

// closeListeners closes what the servers have not (they close their own).
func (s *Server) closeListeners(context.Context) error {
	for _, ln := range []net.Listener{s.apiLn, s.grpcLn, s.peerLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	return nil
}

func (s *Server) startNode(ctx context.Context) error {
	nc := s.cfg.Node
	nc.APIAddr = cluster.Advertise(s.apiLn.Addr().String(), nc.GossipAddr)
	nc.GRPCAddr = cluster.Advertise(s.grpcLn.Addr().String(), nc.GossipAddr)
	nc.PeerAddr = cluster.Advertise(s.peerLn.Addr().String(), nc.GossipAddr)
	if nc.HTTPAddr != "" {
		nc.HTTPAddr = cluster.Advertise(nc.HTTPAddr, nc.GossipAddr)
	}
	s.apiAddr, s.grpcAddr, s.peerAddr = nc.APIAddr, nc.GRPCAddr, nc.PeerAddr
	node := cluster.NewNode(nc)
	nodeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // ended by stopNode, after the hand-off
	if err := node.Start(nodeCtx); err != nil {
		cancel()
		return err
	}
	s.Node, s.cancel = node, cancel
	return nil
}

func (s *Server) stopNode(context.Context) error {
	s.cancel()
	s.Node.Wait()
	s.Node.Close()
	return nil
}

func (s *Server) serve(context.Context) error {
	node, auth := s.Node, s.cfg.Auth
	readTimeout := cmp.Or(s.cfg.ReadTimeout, defaultReadTimeout)
	s.api = &http.Server{
		Handler:           HTTPHandler(node, node.Admin(), auth, s.cfg.Node.Logger.With("component", "api")),
		ReadHeaderTimeout: min(readTimeout, 10*time.Second),
		ReadTimeout:       readTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.grpc = grpc.NewServer(append(grpcLimits(), grpc.UnaryInterceptor(AuthInterceptor(auth)))...)
	tollgatev1.RegisterRateLimiterServer(s.grpc, GRPCService(node))
	configv1.RegisterAdminServer(s.grpc, AdminService(node.Admin()))
	rlsv3.RegisterRateLimitServiceServer(s.grpc, RLSService(node, s.cfg.RLS, node.Registry()))
	s.health, s.healthDone = health.NewServer(), make(chan struct{})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	go s.followReady(s.health, s.healthDone)
	if s.cfg.Reflection {
		reflection.Register(s.grpc)
	}
	peerOpts := append(grpcLimits(), peer.ServerOptions()...)
	if t := s.cfg.Node.TLS; t != nil {
		peerOpts = append(peerOpts, t.ServerOptions()...)
	}
	s.peer = grpc.NewServer(peerOpts...)
	peerv1.RegisterPeerServer(s.peer, node.PeerService())
	apiLn, grpcLn, peerLn := s.apiLn, s.grpcLn, s.peerLn
	go func() { s.errc <- ignoreClosed(s.api.Serve(apiLn)) }()
	go func() { s.errc <- s.grpc.Serve(grpcLn) }()
	go func() { s.errc <- s.peer.Serve(peerLn) }()
	return nil
}

// grpcLimits bound what one client may hold of a gRPC server.
func grpcLimits() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.MaxRecvMsgSize(maxRecvBytes),
		// Clients may ping to keep a connection, but not flood it with
		// pings; an idle connection is closed after a while.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 10 * time.Minute}),
	}
}

// drain stops the servers, cutting them off at the deadline: the public
// ones first, the peer plane last (other nodes may still pass it checks
// until they hear of the leave).
func (s *Server) drain(ctx context.Context) error {
	close(s.healthDone)
	s.health.Shutdown() // NOT_SERVING to every watcher, before the streams close
	peer.GracefulStop(ctx, s.grpc)
	err := s.api.Shutdown(ctx)
	peer.GracefulStop(ctx, s.peer)
	return err
}

// healthServices are the services grpc.health.v1 reports on ("" is the
// server as a whole); each is serving exactly when the node is ready.
var healthServices = []string{"", tollgatev1.RateLimiter_ServiceDesc.ServiceName, configv1.Admin_ServiceDesc.ServiceName,
	rlsv3.RateLimitService_ServiceDesc.ServiceName}

// followReady keeps the health service in step with the node's readiness
// (what /readyz says) until done is closed: NOT_SERVING while it joins and
// from the moment it starts to leave.
func (s *Server) followReady(h *health.Server, done <-chan struct{}) {
	t := time.NewTicker(healthPoll)
	defer t.Stop()
	last, first := false, true
	for {
		if ready := s.Node.Ready(); ready != last || first {
			st := healthpb.HealthCheckResponse_NOT_SERVING
			if ready {
				st = healthpb.HealthCheckResponse_SERVING
			}
			for _, name := range healthServices {
				h.SetServingStatus(name, st)
			}
			last, first = ready, false
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// healthPoll is how soon the health service follows a change of the
// node's readiness.
const healthPoll = 100 * time.Millisecond

func (s *Server) leave(ctx context.Context) error {
	s.Node.Leave(ctx)
	return nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// APIAddr, GRPCAddr and PeerAddr are the addresses the node advertises.
func (s *Server) APIAddr() string  { return s.apiAddr }
func (s *Server) GRPCAddr() string { return s.grpcAddr }
func (s *Server) PeerAddr() string { return s.peerAddr }

// GossipAddr is the address gossip listens on ("" when standalone).
func (s *Server) GossipAddr() string { return s.Node.GossipAddr() }

// Err delivers the error of a server that stopped serving on its own.
func (s *Server) Err() <-chan error { return s.errc }

// errNotStarted is Shutdown's answer for a server StartServer did not
// start: whoever started its Parts stops them.
var errNotStarted = errors.New("server not started by StartServer: stop its parts where they were started")

// Shutdown stops a server started by StartServer: its parts in reverse.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.stop == nil {
		return errNotStarted
	}
	return s.stop(ctx)
}

// Kill stops the node abruptly, as a crash would: no hand-off, no leave.
// For failure tests in one process.
func (s *Server) Kill() {
	s.Node.Crash()
	close(s.healthDone)
	s.grpc.Stop()
	s.peer.Stop()
	s.api.Close()
	s.cancel()
	s.Node.Wait()
	s.Node.Close()
}
