package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/proxy/mockupstream"
	"github.com/tollgate/tollgate/quota"
)

// gatewayRig is a real 3-node cluster with its gateways in front of three
// mock upstreams: a quick one, a slow streaming one and a broken one.
type gatewayRig struct {
	*realCluster
	quick *mockupstream.Server
	keys  map[string]string // tenant → key
}

func startGatewayRig(t *testing.T) *gatewayRig {
	t.Helper()
	r := &gatewayRig{realCluster: startRealCluster(t, 3), keys: map[string]string{}}
	r.quick = mockupstream.New(mockupstream.Options{CompletionTokens: 12})
	upstreams := map[string]http.Handler{
		"quick":  r.quick,
		"slow":   mockupstream.New(mockupstream.Options{CompletionTokens: 1000, ChunkDelay: 20 * time.Millisecond}),
		"broken": mockupstream.New(mockupstream.Options{ErrorRate: 1}),
	}
	models := map[string]string{"quick": `["chat","embed"]`, "slow": `["slow-chat"]`, "broken": `["broken-chat"]`}
	api := r.nodes[1].apiAddr
	for name, h := range upstreams {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		body := fmt.Sprintf(`{"name":%q,"base_url":"%s/v1","models":%s,"prompt_price_per_million":2,"completion_price_per_million":6}`, name, srv.URL, models[name])
		mustAdmin(t, api, "PUT", "/admin/v1/providers/"+name, body)
	}
	for id, overrides := range map[string]string{
		"t-sum":    `{}`,
		"t-conc":   `{"max_concurrent":5}`,
		"t-rpm":    `{"requests_per_minute":30}`,
		"t-budget": `{"tokens_per_month":100}`,
		"t-fail":   `{"requests_per_minute":3}`,
	} {
		mustAdmin(t, api, "POST", "/admin/v1/tenants", fmt.Sprintf(`{"id":%q,"plan":"gold","overrides":%s}`, id, overrides))
		var key admin.Key
		if err := callAdmin(api, "POST", "/admin/v1/tenants/"+id+"/keys", "", &key); err != nil {
			t.Fatalf("creating a key for %s: %v", id, err)
		}
		r.keys[id] = key.Key
	}
	// Every gateway knows every key once the configuration has reached it.
	clustertest.Eventually(t, 10*time.Second, "every key on every gateway", func() bool {
		for _, p := range r.nodes {
			for _, key := range r.keys {
				if code, _ := r.models(p, key); code != 200 {
					return false
				}
			}
		}
		return true
	})
	return r
}

func mustAdmin(t *testing.T, api, method, path, body string) {
	t.Helper()
	if err := callAdmin(api, method, path, body, nil); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

func (r *gatewayRig) models(p *process, key string) (int, error) {
	req, _ := http.NewRequest("GET", "http://"+p.httpAddr+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// send posts body to path on node i's gateway as tenant.
func (r *gatewayRig) send(ctx context.Context, i int, tenant, path, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+r.nodes[i%len(r.nodes)].httpAddr+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.keys[tenant])
	return http.DefaultClient.Do(req)
}

// usage reads a tenant's committed usage this month.
func (r *gatewayRig) usage(t *testing.T, tenant string) (requests, prompt, completion, tokens int64) {
	t.Helper()
	var rep admin.UsageReport
	if err := callAdmin(r.nodes[0].apiAddr, "GET", "/admin/v1/tenants/"+tenant+"/usage", "", &rep); err != nil {
		t.Fatalf("usage of %s: %v", tenant, err)
	}
	return rep.Total.Requests, rep.Total.PromptTokens, rep.Total.CompletionTokens, rep.Total.Tokens
}

func TestGatewayEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	r := startGatewayRig(t)
	t.Run("charged equals reported", r.chargedEqualsReported)
	t.Run("concurrency leases", r.concurrencyLeases)
	t.Run("requests per minute across nodes", r.requestsPerMinute)
	t.Run("monthly budget", r.monthlyBudget)
	t.Run("headers and errors", r.headersAndErrors)
	t.Run("upstream failure refunds", r.failureRefunds)
}

// chargedEqualsReported sends 510 requests spread over the nodes,
// streamed and not, and finds in the ledger exactly the usage the upstream
// reported.
func (r *gatewayRig) chargedEqualsReported(t *testing.T) {
	const n = 510
	bodies := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"%s"}],"max_tokens":%d}`},
		{"/v1/chat/completions", `{"model":"chat","stream":true,"messages":[{"role":"user","content":"%s"}],"max_tokens":%d}`},
		{"/v1/completions", `{"model":"chat","stream":true,"prompt":"%s","max_tokens":%d}`},
		{"/v1/completions", `{"model":"chat","prompt":"%s","max_tokens":%d}`},
		{"/v1/embeddings", `{"model":"embed","input":"%s","dimensions":%d}`},
	}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				b := bodies[i%int64(len(bodies))]
				body := fmt.Sprintf(b.body, strings.Repeat("x", int(i%97)), 1+i%20)
				resp, err := r.send(t.Context(), int(i), "t-sum", b.path, body)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	reported := r.quick.Reported()
	if reported.Requests != n {
		t.Fatalf("the upstream reported usage for %d requests, want %d", reported.Requests, n)
	}
	var requests, prompt, completion, tokens int64
	clustertest.Eventually(t, 15*time.Second, "the ledger to hold what the upstream reported", func() bool {
		requests, prompt, completion, tokens = r.usage(t, "t-sum")
		return requests == n && tokens == reported.TotalTokens
	})
	if prompt != reported.PromptTokens || completion != reported.CompletionTokens {
		t.Fatalf("ledger: %d prompt + %d completion tokens; upstream: %d + %d", prompt, completion, reported.PromptTokens, reported.CompletionTokens)
	}
}

// openStream starts a slow stream and reads its first event; it returns
// the status and, for a 200, a cancel that hangs up.
func (r *gatewayRig) openStream(t *testing.T, i int, tenant string) (int, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	resp, err := r.send(ctx, i, tenant, "/v1/chat/completions", `{"model":"slow-chat","stream":true,"messages":[{"role":"user","content":"go on"}]}`)
	if err != nil {
		cancel()
		t.Errorf("stream %d: %v", i, err)
		return 0, func() {}
	}
	if resp.StatusCode == 200 {
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Errorf("stream %d: reading the first event: %v", i, err)
		}
	}
	return resp.StatusCode, func() { cancel(); resp.Body.Close() }
}

// parallelStreams opens k slow streams at once and counts the admitted.
func (r *gatewayRig) parallelStreams(t *testing.T, k int) (admitted, denied int, hangUp func()) {
	codes := make([]int, k)
	cancels := make([]context.CancelFunc, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() { codes[i], cancels[i] = r.openStream(t, i, "t-conc") })
	}
	wg.Wait()
	for _, c := range codes {
		switch c {
		case 200:
			admitted++
		case 429:
			denied++
		}
	}
	return admitted, denied, func() {
		for _, c := range cancels {
			c()
		}
	}
}

func (r *gatewayRig) concurrencyLeases(t *testing.T) {
	admitted, denied, hangUp := r.parallelStreams(t, 20)
	if admitted != 5 || denied != 15 {
		hangUp()
		t.Fatalf("20 parallel streams at max_concurrent 5: %d admitted, %d denied; want 5 and 15", admitted, denied)
	}
	hangUp() // every client leaves mid-stream
	clustertest.Eventually(t, 10*time.Second, "all 5 leases back", func() bool {
		admitted, _, hangUp := r.parallelStreams(t, 5)
		hangUp()
		return admitted == 5
	})
}

func (r *gatewayRig) requestsPerMinute(t *testing.T) {
	start := time.Now()
	admitted := 0
	for i := range 45 {
		resp, err := r.send(t.Context(), i, "t-rpm", "/v1/embeddings", `{"model":"embed","input":"x"}`)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			admitted++
		} else if resp.StatusCode != 429 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// 30 a minute refill one every 2 s while the test runs.
	if most := 30 + int(time.Since(start)/(2*time.Second)); admitted < 30 || admitted > most {
		t.Fatalf("45 requests over 3 nodes at 30 a minute: %d admitted, want 30 (up to %d with refill)", admitted, most)
	}
}

func (r *gatewayRig) monthlyBudget(t *testing.T) {
	for i := range 20 {
		resp, err := r.send(t.Context(), i, "t-budget", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":12}`)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			resp.Body.Close()
			continue
		}
		var body struct {
			Error struct{ Type, Code, Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 429 || body.Error.Code != "insufficient_quota" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d: %d %+v, want 429 insufficient_quota with Retry-After", i, resp.StatusCode, body.Error)
		}
		if i < 5 {
			t.Fatalf("denied after %d requests of about 15 tokens against a budget of 100", i)
		}
		// The budget renews when the next UTC month begins; until then a
		// retry cannot help.
		now := time.Now().UTC()
		untilNext := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(now).Seconds()
		retry, err := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64)
		if err != nil || retry < untilNext-5 || retry > untilNext+5 || resp.Header.Get("x-should-retry") != "false" {
			t.Fatalf("budget refusal: Retry-After %q (want about %.0f), x-should-retry %q", resp.Header.Get("Retry-After"), untilNext, resp.Header.Get("x-should-retry"))
		}
		return
	}
	t.Fatal("20 requests against a budget of 100 tokens were all admitted")
}

func (r *gatewayRig) headersAndErrors(t *testing.T) {
	resp, err := r.send(t.Context(), 2, "t-sum", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, h := range []string{"RateLimit-Policy", "RateLimit", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
		"x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("answer lacks %s", h)
		}
	}
	if got := resp.Header.Get("RateLimit-Policy"); got != `"requests";q=1000;w=60, "tokens";q=500000;w=60` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	for _, tc := range []struct {
		key, body string
		status    int
		code      string
	}{
		{"tg_unknown", `{"model":"chat"}`, 401, "invalid_api_key"},
		{r.keys["t-sum"], `{"model":"nope"}`, 404, "model_not_found"},
	} {
		req, _ := http.NewRequest("POST", "http://"+r.nodes[0].httpAddr+"/v1/chat/completions", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tc.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		e := body["error"]
		_, hasParam := e["param"]
		if resp.StatusCode != tc.status || e["code"] != tc.code || e["message"] == "" || e["type"] == "" || !hasParam {
			t.Errorf("%s: %d %v", tc.body, resp.StatusCode, body)
		}
	}
	// Each node writes one audit line per request, without key material.
	found := false
	for _, p := range r.nodes {
		logs := p.logText()
		if strings.Contains(logs, r.keys["t-sum"]) || strings.Contains(logs, "Bearer") {
			t.Fatalf("%s logged key material", p.name)
		}
		found = found || strings.Contains(logs, `"component":"audit"`) && strings.Contains(logs, `"tenant":"t-sum"`)
	}
	if !found {
		t.Fatal("no audit line for t-sum")
	}
}

func (r *gatewayRig) failureRefunds(t *testing.T) {
	// Three requests a minute: five failures in a row are all refunded,
	// so none is denied, and a success after them still finds room.
	for i := range 5 {
		resp, err := r.send(t.Context(), i, "t-fail", "/v1/chat/completions", `{"model":"broken-chat","messages":[{"role":"user","content":"x"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("failure %d: status %d, want 502", i, resp.StatusCode)
		}
	}
	clustertest.Eventually(t, 5*time.Second, "the refunds to reach the owner", func() bool {
		// A plan check of nothing only looks.
		answer, code, err := postCheck(r.nodes[2].apiAddr, `{"tenant":"t-fail","requests":0}`)
		if err != nil || code != 200 {
			return false
		}
		for _, l := range answer["limits"].([]any) {
			if l := l.(map[string]any); l["name"] == quota.LimitRequestsPerMinute {
				return l["remaining"] == 3.0
			}
		}
		return false
	})
	resp, err := r.send(t.Context(), 1, "t-fail", "/v1/embeddings", `{"model":"embed","input":"x"}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-remaining-requests") != "2" {
		t.Fatalf("a success after the refunds: %d, %s requests left; want 200 and 2", resp.StatusCode, resp.Header.Get("x-ratelimit-remaining-requests"))
	}
	clustertest.Eventually(t, 10*time.Second, "only the success in the ledger", func() bool {
		requests, _, _, _ := r.usage(t, "t-fail")
		return requests == 1
	})
}
