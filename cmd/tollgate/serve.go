package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/cluster"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// serve runs one node until ctx ends, then stops it gracefully.
func serve(ctx context.Context, cfg Config, logOut io.Writer) error {
	log, err := cfg.logger(logOut)
	if err != nil {
		return err
	}
	log = log.With("node", cfg.NodeName)
	if len(cfg.Join) > 0 || cfg.BootstrapExpect > 0 {
		log.Warn("cluster flags are accepted but this build runs a standalone node", "join", cfg.Join.String(), "bootstrap-expect", cfg.BootstrapExpect)
	}

	// 1. The node and its limit store.
	node := cluster.NewNode(cluster.Config{
		NodeName:   cfg.NodeName,
		MaxEntries: cfg.MaxEntries,
		IdleTTL:    cfg.IdleTTL,
		Logger:     log,
	})
	nodeCtx, stopNode := context.WithCancel(ctx)
	defer stopNode()
	node.Start(nodeCtx)
	defer node.Wait()

	// 2. Listeners first, so a bad address fails before anything serves.
	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api-addr: %w", err)
	}
	grpcLn, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("grpc-addr: %w", err)
	}

	// 3. The servers.
	apiSrv := &http.Server{
		Handler:           node.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	grpcSrv := grpc.NewServer()
	tollgatev1.RegisterRateLimiterServer(grpcSrv, node.GRPCService())

	errc := make(chan error, 2)
	go func() { errc <- ignoreClosed(apiSrv.Serve(apiLn)) }()
	go func() { errc <- grpcSrv.Serve(grpcLn) }()
	log.Info("listening", "server", "api", "addr", apiLn.Addr().String())
	log.Info("listening", "server", "grpc", "addr", grpcLn.Addr().String())
	node.SetReady(true)

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case serveErr = <-errc:
		log.Error("server failed", "err", serveErr)
	}

	// Shutdown in reverse: stop being ready so balancers drain us, stop
	// accepting and finish requests in flight, then stop background work.
	node.SetReady(false)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	stopGRPC(shutdownCtx, grpcSrv)
	if err := apiSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("api server did not drain in time", "err", err)
	}
	stopNode()
	node.Wait()
	log.Info("stopped")
	return serveErr
}

// stopGRPC drains the gRPC server, cutting it off at the deadline.
func stopGRPC(ctx context.Context, s *grpc.Server) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
		<-done
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
