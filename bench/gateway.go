package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// gateway sends chat completions with each tenant's key, a share of them
// streamed; 200 is admitted and 429 denied.
type gateway struct {
	urls   []string
	client *http.Client
	keys   map[string]string
	bodies [2]string // not streamed, streamed
	share  float64
	n      atomic.Uint64
	// The run's plan and tenants, deleted when it ends: a run leaves
	// nothing behind in the cluster's configuration (their usage stays
	// in the ledger).
	admin, token, plan string
}

func (s *gateway) do(ctx context.Context, target int, tenant string) outcome {
	// The share streams, spread evenly (a fixed pattern, so runs
	// compare): request n streams when n·share crosses a whole number.
	n := float64(s.n.Add(1) - 1)
	body := s.bodies[0]
	if math.Floor((n+1)*s.share) > math.Floor(n*s.share) {
		body = s.bodies[1]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[target], strings.NewReader(body))
	if err != nil {
		return outcome{errKind: "request"}
	}
	req.Header.Set("Authorization", "Bearer "+s.keys[tenant])
	resp, err := s.client.Do(req)
	if err != nil {
		return outcome{errKind: errKind(err)}
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return outcome{errKind: errKind(err)}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return outcome{allowed: true}
	case http.StatusTooManyRequests:
		return outcome{}
	}
	return outcome{errKind: "http_" + strconv.Itoa(resp.StatusCode)}
}

func (s *gateway) close() {
	s.client.CloseIdleConnections()
	// The run's context may have ended (Ctrl-C): clean up under a bound
	// of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for t := range s.keys {
		_ = adminCall(ctx, s.admin, s.token, http.MethodDelete, "/admin/v1/tenants/"+t, nil, nil)
	}
	_ = adminCall(ctx, s.admin, s.token, http.MethodDelete, "/admin/v1/plans/"+s.plan, nil, nil)
}

// adminCall sends one admin API request and decodes its answer into out.
func adminCall(ctx context.Context, server, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL(server)+path, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Bounded: a hung node must not hang the set-up.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// setUpGateway creates the run's tenants, on a plan named run with the
// run's requests per minute, each with a key, through the admin API.
func setUpGateway(ctx context.Context, cfg *Config, run string, tenants []string, targets []string) (*gateway, error) {
	plan := map[string]any{"name": run, "requests_per_minute": cfg.Limit, "tokens_per_minute": 0, "max_concurrent": 0}
	if err := adminCall(ctx, cfg.AdminServer, cfg.AdminToken, http.MethodPut, "/admin/v1/plans/"+run, plan, nil); err != nil {
		return nil, fmt.Errorf("creating the bench plan: %w", err)
	}
	s := &gateway{client: newHTTPClient(cfg.Timeout), keys: map[string]string{}, share: cfg.StreamShare,
		admin: cfg.AdminServer, token: cfg.AdminToken, plan: run}
	for i, stream := range []bool{false, true} {
		s.bodies[i] = fmt.Sprintf(`{"model":%q,"stream":%t,"max_tokens":16,"messages":[{"role":"user","content":"How do token buckets work?"}]}`, cfg.Model, stream)
	}
	ready := false
	defer func() {
		if !ready {
			s.close() // what was made so far
		}
	}()
	for _, t := range targets {
		s.urls = append(s.urls, baseURL(t)+"/v1/chat/completions")
	}
	for _, t := range tenants {
		if err := adminCall(ctx, cfg.AdminServer, cfg.AdminToken, http.MethodPut, "/admin/v1/tenants/"+t,
			map[string]any{"id": t, "plan": run}, nil); err != nil {
			return nil, fmt.Errorf("creating tenant %s: %w", t, err)
		}
		s.keys[t] = "" // to be deleted, even without a key
		var key struct {
			Key string `json:"key"`
		}
		if err := adminCall(ctx, cfg.AdminServer, cfg.AdminToken, http.MethodPost, "/admin/v1/tenants/"+t+"/keys", nil, &key); err != nil {
			return nil, fmt.Errorf("creating a key for %s: %w", t, err)
		}
		s.keys[t] = key.Key
	}
	// Every node learns the keys from Raft; wait until each gateway
	// takes the last one, so that the run does not start with 401s.
	last := s.keys[tenants[len(tenants)-1]]
	deadline := time.Now().Add(15 * time.Second)
	for _, t := range targets {
		for !keyAccepted(ctx, s.client, baseURL(t), last) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("targets: %s does not accept the bench's keys after 15s", t)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	ready = true
	return s, nil
}

func keyAccepted(ctx context.Context, client *http.Client, base, key string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/models", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
