package cluster

import (
	"context"
	"net"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/cluster/peer"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// Server is a node as the cluster's tests run it: with the one server the
// other nodes need, gRPC with the peer service on a free loopback port.
// (package api serves the rest.)
type Server struct {
	Node   *Node
	grpc   *grpc.Server
	cancel context.CancelFunc
	served chan struct{}
}

// startNode starts a node with cfg and its peer server (with opts).
func startNode(ctx context.Context, cfg Config, opts ...grpc.ServerOption) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg.PeerAddr = ln.Addr().String()
	n := NewNode(cfg)
	nodeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // ended by Shutdown or Kill
	if err := n.Start(nodeCtx); err != nil {
		cancel()
		ln.Close()
		return nil, err
	}
	opts = append(opts, peer.ServerOptions()...) // as api serves the peer plane
	if cfg.TLS != nil {
		opts = append(opts, cfg.TLS.ServerOptions()...)
	}
	s := &Server{Node: n, grpc: grpc.NewServer(opts...), cancel: cancel, served: make(chan struct{})}
	peerv1.RegisterPeerServer(s.grpc, n.PeerService())
	go func() { _ = s.grpc.Serve(ln); close(s.served) }()
	return s, nil
}

// GossipAddr is the address the node's gossip listens on.
func (s *Server) GossipAddr() string { return s.Node.GossipAddr() }

// Shutdown stops the node in the order a real one stops: leave (hand-off
// and all) while still serving peers, then stop serving, then stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Node.Leave(ctx)
	peer.GracefulStop(ctx, s.grpc)
	<-s.served
	s.cancel()
	s.Node.Wait()
	s.Node.Close()
	return nil
}

// Kill stops the node as a crash would: no hand-off, no leave.
func (s *Server) Kill() {
	s.Node.Crash()
	s.grpc.Stop()
	<-s.served
	s.cancel()
	s.Node.Wait()
	s.Node.Close()
}
