package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/cluster"
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
	c, err := newAdminClient(api, token)
	if err != nil {
		return nil, err
	}
	provider := cluster.ProviderJSON{Name: "mock", BaseURL: mockURL, Models: mockupstream.DefaultModels(),
		PromptPricePerMillion: 0.5, CompletionPricePerMillion: 1.5}
	if _, err := c.do(ctx, http.MethodPut, "/admin/v1/providers/mock", provider); err != nil {
		return nil, err
	}
	var keys []demoKey
	for _, t := range []struct{ id, plan string }{{"demo-bronze", "bronze"}, {"demo-gold", "gold"}} {
		tenant := map[string]string{"id": t.id, "name": "Demo tenant on " + t.plan, "plan": t.plan}
		if _, err := c.do(ctx, http.MethodPut, "/admin/v1/tenants/"+t.id, tenant); err != nil {
			return nil, err
		}
		raw, err := c.do(ctx, http.MethodPost, "/admin/v1/tenants/"+t.id+"/keys", map[string]string{"name": "dev"})
		if err != nil {
			return nil, err
		}
		var k cluster.KeyJSON
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, err
		}
		keys = append(keys, demoKey{tenant: t.id, plan: t.plan, key: k.Key})
	}
	return keys, nil
}
