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
	gateway  *proxy.Gateway
	http     *http.Server
	httpAddr string
	errc     chan error
}

// startNode listens on the gateway address first, so that the node
// advertises the port it really got, then starts the node and the gateway.
func startNode(ctx context.Context, cfg Config, log *slog.Logger) (*runningNode, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http-addr: %w", err)
	}
	nc := cfg.nodeConfig(log)
	nc.Node.HTTPAddr = ln.Addr().String()
	srv, err := api.StartServer(ctx, nc)
	if err != nil {
		ln.Close()
		return nil, err
	}
	gw, err := proxy.New(proxy.Options{
		Config:           func() proxy.Config { return srv.Node.Config() },
		Reserver:         gatewayBackend{srv.Node},
		Node:             cfg.NodeName,
		Logger:           log,
		ConnectTimeout:   cfg.UpstreamConnectTimeout,
		HeaderTimeout:    cfg.UpstreamHeaderTimeout,
		Timeout:          cfg.UpstreamTimeout,
		DefaultMaxTokens: cfg.DefaultMaxTokens,
		Registerer:       srv.Node.Registry(),
	})
	if err != nil {
		ln.Close()
		_ = srv.Shutdown(ctx)
		return nil, err
	}
	n := &runningNode{
		Server: srv, gateway: gw, httpAddr: ln.Addr().String(), errc: make(chan error, 2),
		http: &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
	}
	go func() {
		if err := n.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.errc <- fmt.Errorf("gateway: %w", err)
		}
	}()
	go func() {
		if err := <-srv.Err(); err != nil {
			n.errc <- err
		}
	}()
	return n, nil
}

// HTTPAddr is the gateway's address.
func (n *runningNode) HTTPAddr() string { return n.httpAddr }

// Err delivers the error of a server that stopped on its own.
func (n *runningNode) Err() <-chan error { return n.errc }

// Shutdown stops the gateway first: requests in flight get half the time
// to finish, then are cut off, and each settles as it ends. Then the node
// stops, which applies those settlements before it hands its tenants on.
func (n *runningNode) Shutdown(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	drain := time.Until(deadline) / 2
	drainCtx, cancel := context.WithTimeout(ctx, drain)
	err := n.http.Shutdown(drainCtx)
	cancel()
	if err != nil {
		_ = n.http.Close()
	}
	n.gateway.Wait()
	n.gateway.Close()
	return errors.Join(err, n.Server.Shutdown(ctx))
}

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

func (b gatewayBackend) Settle(r *proxy.Reservation, u quota.Usage) {
	b.node.Settle(r.Ticket.(*cluster.Reservation), u)
}
