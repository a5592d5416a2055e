package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/proxy/mockupstream"
)

// devMock is the mock upstream `tollgate dev` runs beside its nodes.
type devMock struct {
	ln  net.Listener
	srv *http.Server
}

func startDevMock(addr string, chunkDelay time.Duration) (*devMock, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mock-port: %w", err)
	}
	m := &devMock{ln: ln, srv: &http.Server{
		Handler:           mockupstream.New(mockupstream.Options{ChunkDelay: chunkDelay}),
		ReadHeaderTimeout: 10 * time.Second,
	}}
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

func (m *devMock) Addr() net.Addr { return m.ln.Addr() }
func (m *devMock) Close()         { _ = m.srv.Close() }

// demoKey is a demo tenant's key, printed once.
type demoKey struct{ tenant, plan, key string }

// seedDemo registers the mock upstream as a provider and creates two demo
// tenants on different plans, each with a key, through the admin API.
func seedDemo(ctx context.Context, api, token, mockURL string) ([]demoKey, error) {
	c, err := admin.NewClient(api, token, 0) // ctx bounds it: tollgate dev's own
	if err != nil {
		return nil, err
	}
	provider := admin.Provider{Name: "mock", BaseURL: mockURL, Models: mockupstream.DefaultModels(),
		PromptPricePerMillion: 0.5, CompletionPricePerMillion: 1.5}
	if err := c.PutProvider(ctx, provider); err != nil {
		return nil, err
	}
	var keys []demoKey
	for _, t := range []struct{ id, plan string }{{"demo-bronze", "bronze"}, {"demo-gold", "gold"}} {
		if err := c.PutTenant(ctx, admin.Tenant{ID: t.id, Name: "Demo tenant on " + t.plan, Plan: t.plan}); err != nil {
			return nil, err
		}
		k, err := c.CreateKey(ctx, t.id, "dev")
		if err != nil {
			return nil, err
		}
		keys = append(keys, demoKey{tenant: t.id, plan: t.plan, key: k.Key})
	}
	return keys, nil
}
