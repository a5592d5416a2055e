package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/api/admin"
)

// adminTimeout bounds each admin API call of a set-up or clean-up: a hung
// node must not hang them.
const adminTimeout = 10 * time.Second

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
	api  *admin.Client
	plan string
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
		_ = s.api.DeleteTenant(ctx, t)
	}
	_ = s.api.DeletePlan(ctx, s.plan)
}

// setUpGateway creates the run's tenants, on a plan named run with the
// run's requests per minute, each with a key, through the admin API.
func setUpGateway(ctx context.Context, cfg *Config, run string, tenants []string, targets []string) (*gateway, error) {
	api, err := admin.NewClient(cfg.AdminServer, cfg.AdminToken, adminTimeout)
	if err != nil {
		return nil, fmt.Errorf("admin-server: %w", err)
	}
	// The run's requests per minute are the plan's one limit; 0 is none.
	if err := api.PutPlan(ctx, admin.Plan{Name: run, RequestsPerMinute: cfg.Limit}); err != nil {
		return nil, fmt.Errorf("creating the bench plan: %w", err)
	}
	s := &gateway{client: newHTTPClient(cfg.Timeout), keys: map[string]string{}, share: cfg.StreamShare,
		api: api, plan: run}
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
		if err := api.PutTenant(ctx, admin.Tenant{ID: t, Plan: run}); err != nil {
			return nil, fmt.Errorf("creating tenant %s: %w", t, err)
		}
		s.keys[t] = "" // to be deleted, even without a key
		key, err := api.CreateKey(ctx, t, "")
		if err != nil {
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
