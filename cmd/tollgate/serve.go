package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/cluster/peer"
)

// nodeConfig turns the flags into a node's configuration.
func (c *Config) nodeConfig(log *slog.Logger) api.ServerConfig {
	window := c.BatchWindow
	if window == 0 {
		window = -1 // the flag's 0 means no wait; peer.ForwardConfig's means default
	}
	return api.ServerConfig{
		APIListen:  c.APIAddr,
		GRPCListen: c.GRPCAddr,
		PeerListen: c.peerListen(),
		Reflection: c.GRPCReflection,
		RLS:        api.RLSConfig{UnknownDomainOverLimit: c.RLSUnknownDomain == "over_limit"},
		Auth: api.Auth{
			Admin:      api.TokenAuth{Token: c.AdminToken, Open: c.adminOpen},
			CheckToken: c.CheckToken,
		},
		Node: cluster.Config{
			NodeName:   c.NodeName,
			MaxEntries: c.MaxEntries,
			MaxLeases:  c.MaxLeases,
			IdleTTL:    c.IdleTTL,
			Logger:     log,
			GossipAddr: c.GossipAddr,
			Join:       c.Join,
			Gossip:     gossip.Security{Keys: c.gossipKeys, Label: c.ClusterLabel},
			TLS:        c.tls,
			Upstreams:  cluster.UpstreamPolicy{KeyEnvPrefix: c.ProviderKeyPrefix, AllowPrivate: c.AllowPrivateUpstreams},
			HTTPAddr:   c.HTTPAddr,

			RaftListen:      c.RaftAddr,
			DataDir:         c.DataDir,
			InMemory:        c.InMemory,
			BootstrapExpect: c.BootstrapExpect,

			Build:             buildOf(),
			MetricsTenants:    cmp.Or(c.MetricsTenants, -1), // the flag's 0 is none; the node's, the default
			NoReplication:     !c.Replicate,
			ReplicateInterval: c.ReplicateInterval,
			Forward: peer.ForwardConfig{
				BatchWindow: window,
				BatchMax:    c.BatchMax,
				Timeout:     c.ForwardTimeout,
			},
		},
	}
}

// serve runs one node until ctx ends, then stops it gracefully.
func serve(ctx context.Context, cfg Config, logOut io.Writer) error {
	log, err := cfg.logger(logOut)
	if err != nil {
		return err
	}
	log = log.With("node", cfg.NodeName)
	stopDebug, err := startDebug(cfg.DebugAddr, log)
	if err != nil {
		return fmt.Errorf("debug-addr: %w", err)
	}
	defer stopDebug()
	srv, err := startNode(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("listening", "server", "gateway", "addr", srv.HTTPAddr())
	log.Info("listening", "server", "api", "addr", srv.APIAddr())
	log.Info("listening", "server", "grpc", "addr", srv.GRPCAddr())
	log.Info("listening", "server", "peer", "addr", srv.PeerAddr())
	if cfg.AdminToken == "" {
		log.Warn("no admin token: the admin API is off (set --admin-token or TOLLGATE_ADMIN_TOKEN)")
	}
	if cfg.tls != nil {
		log.Info("peer plane and raft over mutual TLS", "certificate_names", cfg.tls.Names())
	}
	if cfg.tls == nil && cfg.InsecureCluster {
		log.Warn("--insecure-cluster: the peer plane and Raft run without TLS; anyone who reaches their ports can write the configuration")
	}
	if cfg.CheckToken == "" {
		log.Warn("no check token: anyone who reaches the API port may run checks (set --check-token or TOLLGATE_CHECK_TOKEN)")
	}
	if g := srv.GossipAddr(); g != "" {
		log.Info("listening", "server", "gossip", "addr", g)
	} else {
		log.Warn("no gossip-addr: running standalone, this node owns every tenant")
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case serveErr = <-srv.Err():
		log.Error("server failed", "err", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("did not drain in time", "err", err)
	}
	log.Info("stopped")
	return serveErr
}
