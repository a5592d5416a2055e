package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/quota"
)

// runningNode is one node: the cluster member with its API and gRPC
// servers, and the OpenAI-compatible gateway in front of it.
type runningNode struct {
	*api.Server
	cfg      Config
	log      *slog.Logger
	ln       net.Listener // the gateway's
	gateway  *proxy.Gateway
	http     *http.Server
	httpAddr string
	errc     chan error
	stop     func(context.Context) error
}

// startNode starts a node's parts in order; Shutdown stops them in
// reverse. The gateway's port is taken before any of them, so that the
// node advertises the port it really got.
func startNode(ctx context.Context, cfg Config, log *slog.Logger) (*runningNode, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http-addr: %w", err)
	}
	nc := cfg.nodeConfig(log)
	nc.Node.HTTPAddr = ln.Addr().String()
	n := &runningNode{Server: api.NewServer(nc), cfg: cfg, log: log, ln: ln, httpAddr: ln.Addr().String(), errc: make(chan error, 2)}
	parts := append(n.Server.Parts(),
		// Last to start, first to stop: requests in flight finish, and
		// settle, while the node still owns its tenants.
		api.Part{Name: "gateway", Start: n.startGateway, Stop: n.stopGateway})
	if n.stop, err = api.Start(ctx, parts); err != nil {
		ln.Close()
		return nil, err
	}
	go func() {
		if err := <-n.Server.Err(); err != nil {
			n.errc <- err
		}
	}()
	return n, nil
}

func (n *runningNode) startGateway(context.Context) error {
	node := n.Server.Node
	gw, err := proxy.New(proxy.Options{
		Config:                func() proxy.Config { return node.Config() },
		Reserver:              gatewayBackend{node},
		Node:                  n.cfg.NodeName,
		Logger:                n.log,
		ConnectTimeout:        n.cfg.UpstreamConnectTimeout,
		HeaderTimeout:         n.cfg.UpstreamHeaderTimeout,
		Timeout:               n.cfg.UpstreamTimeout,
		DefaultMaxTokens:      n.cfg.DefaultMaxTokens,
		KeyEnvPrefix:          n.cfg.ProviderKeyPrefix,
		AllowPrivateUpstreams: n.cfg.AllowPrivateUpstreams,
		Registerer:            node.Registry(),
	})
	if err != nil {
		return err
	}
	n.gateway = gw
	n.http = &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := n.http.Serve(n.ln); !errors.Is(err, http.ErrServerClosed) {
			n.errc <- fmt.Errorf("gateway: %w", err)
		}
	}()
	return nil
}

// stopGateway gives requests in flight half the time left to finish, then
// cuts them off; each settles as it ends.
func (n *runningNode) stopGateway(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	drainCtx, cancel := context.WithTimeout(ctx, time.Until(deadline)/2)
	err := n.http.Shutdown(drainCtx)
	cancel()
	if err != nil {
		_ = n.http.Close()
	}
	n.gateway.Wait()
	n.gateway.Close()
	return err
}

// HTTPAddr is the gateway's address.
func (n *runningNode) HTTPAddr() string { return n.httpAddr }

// Err delivers the error of a server that stopped on its own.
func (n *runningNode) Err() <-chan error { return n.errc }

// Shutdown stops the node's parts in reverse order (see startNode).
func (n *runningNode) Shutdown(ctx context.Context) error { return n.stop(ctx) }

// gatewayBackend lets the gateway reserve and settle on the node. The two
// packages do not know each other; this, and the words of package quota,
// is the whole of what they share.
type gatewayBackend struct{ node *cluster.Node }

func (b gatewayBackend) Reserve(ctx context.Context, tenant string, tokens int64, leaseTTL time.Duration) (*proxy.Reservation, error) {
	r, err := b.node.Reserve(ctx, tenant, tokens, leaseTTL)
	if err != nil {
		return nil, err // quota's tenant errors pass as they are
	}
	return &proxy.Reservation{Allowed: r.Allowed, Owner: r.Owner, Degraded: r.Degraded, Ticket: r, Limits: r.Limits}, nil
}

func (b gatewayBackend) Progress(r *proxy.Reservation, u quota.Usage) {
	b.node.Progress(r.Ticket.(*cluster.Reservation), u)
}

func (b gatewayBackend) Settle(r *proxy.Reservation, u quota.Usage) {
	b.node.Settle(r.Ticket.(*cluster.Reservation), u)
}
