package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/peer"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ServerConfig is a node and where it listens.
type ServerConfig struct {
	Node cluster.Config
	// APIListen and GRPCListen are listen addresses; port 0 picks a free
	// port. The node advertises what it actually got.
	APIListen, GRPCListen string
	// Admin guards the admin API.
	Admin AdminAuth
}

// Server is one running node with its HTTP API and gRPC servers.
type Server struct {
	Node   *cluster.Node
	apiLn  net.Listener
	grpcLn net.Listener
	api    *http.Server
	grpc   *grpc.Server
	cancel context.CancelFunc
	errc   chan error
	// the addresses the node advertises
	apiAddr, grpcAddr string
}

// StartServer listens, brings the node up (gossip, joining in the
// background) and serves. Stop it with Shutdown.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	apiLn, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return nil, fmt.Errorf("api-addr: %w", err)
	}
	grpcLn, err := net.Listen("tcp", cfg.GRPCListen)
	if err != nil {
		apiLn.Close()
		return nil, fmt.Errorf("grpc-addr: %w", err)
	}
	nc := cfg.Node
	nc.APIAddr = cluster.Advertise(apiLn.Addr().String(), nc.GossipAddr)
	nc.GRPCAddr = cluster.Advertise(grpcLn.Addr().String(), nc.GossipAddr)
	if nc.HTTPAddr != "" {
		nc.HTTPAddr = cluster.Advertise(nc.HTTPAddr, nc.GossipAddr)
	}
	if nc.Logger == nil {
		nc.Logger = slog.Default()
	}
	node := cluster.NewNode(nc)
	nodeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // ended by Shutdown, after the hand-off
	if err := node.Start(nodeCtx); err != nil {
		cancel()
		apiLn.Close()
		grpcLn.Close()
		return nil, err
	}
	s := &Server{
		Node: node, apiLn: apiLn, grpcLn: grpcLn, cancel: cancel, errc: make(chan error, 2),
		apiAddr: nc.APIAddr, grpcAddr: nc.GRPCAddr,
		api: &http.Server{
			Handler:           HTTPHandler(node, node.Admin(), cfg.Admin, nc.Logger.With("component", "api")),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		grpc: grpc.NewServer(grpc.UnaryInterceptor(AdminInterceptor(cfg.Admin))),
	}
	tollgatev1.RegisterRateLimiterServer(s.grpc, GRPCService(node))
	configv1.RegisterAdminServer(s.grpc, AdminService(node.Admin()))
	peerv1.RegisterPeerServer(s.grpc, node.PeerService())
	go func() { s.errc <- ignoreClosed(s.api.Serve(apiLn)) }()
	go func() { s.errc <- s.grpc.Serve(grpcLn) }()
	return s, nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// APIAddr and GRPCAddr are the addresses the node advertises.
func (s *Server) APIAddr() string  { return s.apiAddr }
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// GossipAddr is the address gossip listens on ("" when standalone).
func (s *Server) GossipAddr() string { return s.Node.GossipAddr() }

// Err delivers the error of a server that stopped serving on its own.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown stops the node gracefully, in an order that loses nothing: stop
// being ready, hand every tenant to its next owner and leave the cluster
// (peers still forward here until they hear of it, and the servers are
// still up to pass those checks on), then drain the servers, then stop the
// node's background work and gossip.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Node.Leave(ctx)
	peer.GracefulStop(ctx, s.grpc)
	err := s.api.Shutdown(ctx)
	s.cancel()
	s.Node.Wait()
	s.Node.Close()
	return err
}

// Kill stops the node abruptly, as a crash would: no hand-off, no leave.
// For failure tests in one process.
func (s *Server) Kill() {
	s.Node.Crash()
	s.grpc.Stop()
	s.api.Close()
	s.cancel()
	s.Node.Wait()
	s.Node.Close()
}
