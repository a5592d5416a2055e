package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/proxy/mockupstream"
	"github.com/tollgate/tollgate/quota"
)

// fakeConfig is a fixed configuration: keys by plaintext, for tests only.
type fakeConfig struct {
	keys      map[string]*configv1.APIKey
	tenants   map[string]*configv1.Tenant
	plans     map[string]*configv1.Plan
	providers []*configv1.Provider
}

func (c *fakeConfig) VerifyKey(secret string) (*configv1.APIKey, bool) {
	k, ok := c.keys[secret]
	return k, ok && k.GetRevokedNanos() == 0
}

func (c *fakeConfig) Tenant(id string) (*configv1.Tenant, bool) {
	t, ok := c.tenants[id]
	return t, ok
}

func (c *fakeConfig) TenantPlan(id string) (*configv1.Plan, bool) {
	t, ok := c.tenants[id]
	if !ok {
		return nil, false
	}
	p, ok := c.plans[t.GetPlan()]
	return p, ok
}

func (c *fakeConfig) ModelProvider(model string) (*configv1.Provider, bool) {
	for _, p := range c.providers {
		if slices.Contains(p.GetModels(), model) {
			return p, true
		}
	}
	return nil, false
}

func (c *fakeConfig) Models() []string {
	var out []string
	for _, p := range c.providers {
		out = append(out, p.GetModels()...)
	}
	slices.Sort(out)
	return out
}

func (c *fakeConfig) OriginAllowed(origin string) bool {
	for _, t := range c.tenants {
		if slices.Contains(t.GetAllowedOrigins(), origin) {
			return true
		}
	}
	return false
}

// fakeReserver decides with a real limiter store (one tenant's plan:
// requests and tokens a minute) and records every settlement.
type fakeReserver struct {
	store *limiter.Store
	rpm   int64
	tpm   int64
	// deny, when set, denies every reservation by that limit.
	deny string
	// fail, when set, is every reservation's error.
	fail error

	mu       sync.Mutex
	reserved []int64
	progress []quota.Usage
	settled  []quota.Usage
	done     chan struct{} // gets one value per settlement
}

func newFakeReserver(rpm, tpm int64) *fakeReserver {
	return &fakeReserver{store: limiter.NewStore(limiter.Options{}), rpm: rpm, tpm: tpm, done: make(chan struct{}, 1000)}
}

func (f *fakeReserver) limits() []limiter.Limit {
	return []limiter.Limit{
		{Name: quota.LimitRequestsPerMinute, Algorithm: limiter.TokenBucket, Limit: f.rpm, Period: time.Minute},
		{Name: quota.LimitTokensPerMinute, Algorithm: limiter.TokenBucket, Limit: f.tpm, Period: time.Minute},
	}
}

func (f *fakeReserver) Reserve(_ context.Context, tenant string, tokens int64, _ time.Duration) (*Reservation, error) {
	f.mu.Lock()
	f.reserved = append(f.reserved, tokens)
	f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	lims := f.limits()
	reqs := []limiter.Request{{Limit: lims[0], Hits: 1}, {Limit: lims[1], Hits: tokens}}
	out := make([]limiter.Result, 2)
	allowed, err := f.store.Reserve(tenant, reqs, out)
	if err != nil {
		return nil, err
	}
	r := &Reservation{Allowed: allowed, Owner: "owner-node", Ticket: tokens}
	for i, res := range out {
		r.Limits = append(r.Limits, quota.LimitStatus{Name: lims[i].Name, Result: res})
	}
	if f.deny != "" {
		r.Allowed = false
		denied := quota.LimitStatus{Name: f.deny, Result: limiter.Result{Limit: 5, RetryAfter: 2500 * time.Millisecond}}
		if i := slices.IndexFunc(r.Limits, func(l quota.LimitStatus) bool { return l.Name == f.deny }); i >= 0 {
			r.Limits[i] = denied
		} else {
			r.Limits = append(r.Limits, denied)
		}
	}
	return r, nil
}

func (f *fakeReserver) Progress(_ *Reservation, u quota.Usage) {
	f.mu.Lock()
	f.progress = append(f.progress, u)
	f.mu.Unlock()
}

func (f *fakeReserver) progressed() []quota.Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.progress)
}

func (f *fakeReserver) Settle(r *Reservation, u quota.Usage) {
	f.mu.Lock()
	f.settled = append(f.settled, u)
	f.mu.Unlock()
	f.done <- struct{}{}
}

func (f *fakeReserver) settlements() []quota.Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.settled)
}

// waitSettled waits for n settlements in all.
func (f *fakeReserver) waitSettled(t *testing.T, n int) []quota.Usage {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for len(f.settlements()) < n {
		select {
		case <-f.done:
		case <-deadline:
			t.Fatalf("%d settlements after 5s, want %d", len(f.settlements()), n)
		}
	}
	return f.settlements()
}

const (
	testKey     = "tg_testkeytestkeytestkeytestkeytestkeytestkey1"
	revokedKey  = "tg_revokedrevokedrevokedrevokedrevokedrevoke"
	suspendKey  = "tg_suspendedsuspendedsuspendedsuspendedsuspe"
	testOrigin  = "https://app.example.com"
	otherOrigin = "https://other.example.com"
)

// rig is a gateway over a fake configuration, a fake reserver and an
// upstream.
type rig struct {
	gw       *Gateway
	srv      *httptest.Server
	cfg      *fakeConfig
	reserver *fakeReserver
	upstream *httptest.Server
	mock     *mockupstream.Server
	logs     *syncBuffer
}

// newRig starts a gateway whose "mock-chat" and "mock-embed" models go to
// upstream (a mock upstream with opts when nil).
func newRig(t *testing.T, opts mockupstream.Options, upstream http.Handler, tweak ...func(*Options)) *rig {
	t.Helper()
	r := &rig{reserver: newFakeReserver(100, 100_000), logs: &syncBuffer{}}
	if upstream == nil {
		r.mock = mockupstream.New(opts)
		upstream = r.mock
	}
	r.upstream = httptest.NewServer(upstream)
	t.Cleanup(r.upstream.Close)
	r.cfg = &fakeConfig{
		keys: map[string]*configv1.APIKey{
			testKey:    {Id: "tg_testkeyt", Tenant: "acme", Sha256: sum(testKey)},
			revokedKey: {Id: "tg_revokedr", Tenant: "acme", Sha256: sum(revokedKey), RevokedNanos: 1},
			suspendKey: {Id: "tg_suspende", Tenant: "frozen", Sha256: sum(suspendKey)},
		},
		tenants: map[string]*configv1.Tenant{
			"acme":   {Id: "acme", Plan: "silver", AllowedOrigins: []string{testOrigin}},
			"frozen": {Id: "frozen", Plan: "silver", Suspended: true, AllowedOrigins: []string{otherOrigin}},
		},
		plans: map[string]*configv1.Plan{
			"silver": {Name: "silver", RequestsPerMinute: 100, TokensPerMinute: 100_000, AllowedModels: []string{"mock-chat", "mock-embed"}},
		},
		providers: []*configv1.Provider{
			{Name: "mock", BaseUrl: r.upstream.URL + "/v1", Models: []string{"mock-chat", "mock-embed", "other-model"},
				PromptPriceMicros: 2_000_000, CompletionPriceMicros: 6_000_000},
		},
	}
	o := Options{
		Config: func() Config { return r.cfg }, Reserver: r.reserver, Node: "node-a",
		Logger: slog.New(slog.NewJSONHandler(r.logs, nil)), Getenv: func(string) string { return "" },
	}
	for _, f := range tweak {
		f(&o)
	}
	gw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.gw = gw
	r.srv = httptest.NewServer(gw)
	t.Cleanup(func() { r.srv.Close(); gw.Wait(); gw.Close() })
	return r
}

func sum(key string) []byte { s := sha256.Sum256([]byte(key)); return s[:] }

// post sends body to path with the test key.
func (r *rig) post(t *testing.T, path, body string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.srv.URL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
