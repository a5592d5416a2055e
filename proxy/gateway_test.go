package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/proxy/mockupstream"
	"github.com/tollgate/tollgate/quota"
)

// openAIError decodes an error answer and checks it has OpenAI's shape:
// an "error" object with message, type, param and code, all present.
func openAIError(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var body map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error answer is not JSON: %v", err)
	}
	e, ok := body["error"]
	if !ok {
		t.Fatalf("no error object in %v", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error object lacks %q: %v", k, e)
		}
	}
	if m, _ := e["message"].(string); m == "" {
		t.Fatalf("empty message: %v", e)
	}
	return e
}

func TestRefusalsComeInOpenAIShapeAndReserveNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{}, nil)
	chat := `{"model":"mock-chat","messages":[{"role":"user","content":"hi"}]}`
	for name, tc := range map[string]struct {
		method, path, body string
		headers            []string
		status             int
		code, param        any
	}{
		"no key":            {"POST", "/v1/chat/completions", chat, []string{"Authorization", ""}, 401, "invalid_api_key", nil},
		"wrong scheme":      {"POST", "/v1/chat/completions", chat, []string{"Authorization", "Basic " + testKey}, 401, "invalid_api_key", nil},
		"unknown key":       {"POST", "/v1/chat/completions", chat, []string{"Authorization", "Bearer tg_nope"}, 401, "invalid_api_key", nil},
		"revoked key":       {"POST", "/v1/chat/completions", chat, []string{"Authorization", "Bearer " + revokedKey}, 401, "invalid_api_key", nil},
		"suspended tenant":  {"POST", "/v1/chat/completions", chat, []string{"Authorization", "Bearer " + suspendKey}, 403, "tenant_suspended", nil},
		"unknown model":     {"POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[]}`, nil, 404, "model_not_found", "model"},
		"model not allowed": {"POST", "/v1/chat/completions", `{"model":"other-model","messages":[]}`, nil, 403, "model_not_allowed", "model"},
		"no model":          {"POST", "/v1/chat/completions", `{"messages":[]}`, nil, 400, nil, "model"},
		"bad json":          {"POST", "/v1/completions", `{"model":`, nil, 400, nil, nil},
		"bad type":          {"POST", "/v1/completions", `{"model":"mock-chat","max_tokens":"many"}`, nil, 400, nil, "max_tokens"},
		"negative max":      {"POST", "/v1/completions", `{"model":"mock-chat","max_tokens":-1}`, nil, 400, nil, "max_tokens"},
		"overflowing max":   {"POST", "/v1/completions", `{"model":"mock-chat","max_tokens":9223372036854775807}`, nil, 400, nil, "max_tokens"},
		"huge completion":   {"POST", "/v1/chat/completions", `{"model":"mock-chat","max_completion_tokens":4294967296}`, nil, 400, nil, "max_completion_tokens"},
		"model twice":       {"POST", "/v1/completions", `{"model":"mock-chat","Model":"other-model"}`, nil, 400, nil, "Model"},
		"streamed embed":    {"POST", "/v1/embeddings", `{"model":"mock-embed","input":"x","stream":true}`, nil, 400, nil, "stream"},
		"too large":         {"POST", "/v1/embeddings", `{"model":"mock-embed","input":"` + strings.Repeat("a", 10<<20) + `"}`, nil, 413, "request_too_large", nil},
		"key via x-api-key": {"POST", "/v1/chat/completions", `{"model":"gpt-9"}`, []string{"Authorization", "", "x-api-key", testKey}, 404, "model_not_found", "model"},
		"other origin":      {"POST", "/v1/chat/completions", chat, []string{"Origin", otherOrigin}, 403, "origin_not_allowed", nil},
		"wrong method":      {"GET", "/v1/chat/completions", "", nil, 405, "method_not_allowed", nil},
		"unknown path":      {"POST", "/v1/images", "{}", nil, 404, "unknown_url", nil},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, r.srv.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			for i := 0; i+1 < len(tc.headers); i += 2 {
				if tc.headers[i+1] == "" {
					req.Header.Del(tc.headers[i])
				} else {
					req.Header.Set(tc.headers[i], tc.headers[i+1])
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			e := openAIError(t, resp)
			if e["code"] != tc.code || e["param"] != tc.param {
				t.Fatalf("code %v param %v, want %v %v (%v)", e["code"], e["param"], tc.code, tc.param, e["message"])
			}
		})
	}
	if n := len(r.reserver.reserved); n != 0 {
		t.Fatalf("%d reservations taken for refused requests", n)
	}
	// Unknown paths share one label: a client cannot make series of its own.
	r.gw.Wait()
	if got := testutil.ToFloat64(r.gw.metrics.requests.WithLabelValues("unknown", "404")); got != 1 {
		t.Errorf("tollgate_gateway_requests_total{endpoint=unknown,status=404} = %v, want 1", got)
	}
	if strings.Contains(r.logs.String(), testKey) || strings.Contains(r.logs.String(), "Bearer") {
		t.Fatal("the audit log contains key material")
	}
}

func TestACompletionIsSettledWithTheUsageTheUpstreamReported(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{CompletionTokens: 7}, nil)
	resp := r.post(t, "/v1/chat/completions", `{"model":"mock-chat","messages":[{"role":"user","content":"sixteen letters."}],"max_tokens":50}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
	}
	var answer struct {
		Usage struct{ PromptTokens, CompletionTokens int64 } `json:"usage"`
	}
	raw := body(resp)
	if err := json.Unmarshal([]byte(raw), &answer); err != nil {
		t.Fatal(err)
	}
	got := r.reserver.waitSettled(t, 1)[0]
	want := quota.Usage{Model: "mock-chat", PromptTokens: 4, CompletionTokens: 7, CostMicros: 4*2 + 7*6}
	if got != want {
		t.Fatalf("settled %+v, want %+v (answer %s)", got, want, raw)
	}
	// Reserved: a prompt of 16 characters (4 tokens) and max_tokens.
	if r.reserver.reserved[0] != 4+50 {
		t.Fatalf("reserved %d tokens, want 54", r.reserver.reserved[0])
	}
	h := resp.Header
	for k, v := range map[string]string{
		"RateLimit-Policy":               `"requests";q=100;w=60, "tokens";q=100000;w=60`,
		"RateLimit":                      `"requests";r=99;t=1, "tokens";r=99946;t=1`,
		"x-ratelimit-limit-requests":     "100",
		"x-ratelimit-remaining-requests": "99",
		"x-ratelimit-reset-requests":     "600ms",
		"x-ratelimit-limit-tokens":       "100000",
		"x-ratelimit-remaining-tokens":   "99946",
		"x-ratelimit-reset-tokens":       "32ms",
	} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	audit := r.logs.String()
	for _, want := range []string{`"tenant":"acme"`, `"model":"mock-chat"`, `"status":200`, `"prompt_tokens":4`, `"completion_tokens":7`, `"cost_micros":50`, `"node":"node-a"`, `"owner":"owner-node"`, `"latency"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit line lacks %s: %s", want, audit)
		}
	}
	if strings.Contains(audit, testKey) {
		t.Fatal("the audit log contains the key")
	}
	r.gw.Wait()
	m := r.gw.metrics
	if got := testutil.ToFloat64(m.requests.WithLabelValues("/chat/completions", "200")); got != 1 {
		t.Errorf("tollgate_gateway_requests_total{200} = %v", got)
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("completion")); got != 7 {
		t.Errorf("tollgate_gateway_tokens_total{completion} = %v", got)
	}
	if got := testutil.ToFloat64(m.cost); got != 50 {
		t.Errorf("tollgate_gateway_cost_micro_dollars_total = %v", got)
	}
}

// events reads a stream's data lines until [DONE] or EOF.
func events(t *testing.T, rd io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestAStreamIsRelayedAndSettledWithItsLastChunk(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{CompletionTokens: 5}, nil)
	for _, tc := range []struct {
		name      string
		body      string
		wantUsage bool
	}{
		{"usage not asked", `{"model":"mock-chat","stream":true,"messages":[{"role":"user","content":"abcd"}]}`, false},
		{"usage asked", `{"model":"mock-chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"abcd"}]}`, true},
		{"completions", `{"model":"mock-chat","stream":true,"prompt":"abcd"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.reserver.settlements())
			resp := r.post(t, pathOf(tc.body), tc.body)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if resp.Header.Get("x-ratelimit-remaining-requests") == "" {
				t.Fatal("a stream lacks the rate-limit headers")
			}
			evs := events(t, resp.Body)
			if evs[len(evs)-1] != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", evs)
			}
			sawUsage := false
			for _, e := range evs {
				sawUsage = sawUsage || usageIn([]byte(e)) != nil
			}
			if sawUsage != tc.wantUsage {
				t.Fatalf("usage chunk delivered: %v, want %v", sawUsage, tc.wantUsage)
			}
			got := r.reserver.waitSettled(t, before+1)[before]
			if got.PromptTokens != 1 || got.CompletionTokens != 5 || got.Failed {
				t.Fatalf("settled %+v, want 1 prompt and 5 completion tokens", got)
			}
		})
	}
}

// The reserver hears what a request has used as it goes: the prompt when
// it goes upstream, then each content chunk, so that a node killed mid
// stream can bill what was delivered.
func TestAStreamReportsItsProgressChunkByChunk(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{CompletionTokens: 4}, nil)
	b := `{"model":"mock-chat","stream":true,"messages":[{"role":"user","content":"abcd"}]}`
	resp := r.post(t, pathOf(b), b)
	events(t, resp.Body)
	r.reserver.waitSettled(t, 1)
	var got []int64
	for _, u := range r.reserver.progressed() {
		if u.Model != "mock-chat" || u.PromptTokens != 1 || u.Failed {
			t.Fatalf("progress %+v, want mock-chat with the prompt's 1 token", u)
		}
		got = append(got, u.CompletionTokens)
	}
	// Four content chunks and the closing one (finish_reason), counted as
	// a stream cut short is charged.
	if want := []int64{0, 1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("completion tokens reported as the stream went: %v, want %v", got, want)
	}
}

func pathOf(body string) string {
	if strings.Contains(body, `"prompt"`) {
		return "/v1/completions"
	}
	return "/v1/chat/completions"
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestTheBodyGoesUpstreamUnchangedButForIncludeUsage(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	upstream := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		got.Store(string(b))
		if req.Header.Get("Authorization") != "Bearer upstream-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"usage":{"prompt_tokens":3,"completion_tokens":2}}`)
	})
	r := newRig(t, mockupstream.Options{}, upstream, func(o *Options) {
		o.Getenv = func(k string) string {
			if k == "TOLLGATE_PROVIDER_MOCK" {
				return "upstream-secret"
			}
			return ""
		}
	})
	r.cfg.providers[0].ApiKeyEnv = "TOLLGATE_PROVIDER_MOCK"
	plain := `{"temperature":0.5,  "model":"mock-chat","messages":[{"role":"user","content":"x"}]}`
	if resp := r.post(t, "/v1/chat/completions", plain); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got.Load() != plain {
		t.Fatalf("upstream got %q, want the body unchanged", got.Load())
	}
	streamed := `{"model":"mock-chat","stream":true,"stream_options":{"other":1},"n":2}`
	r.post(t, "/v1/chat/completions", streamed)
	var sent map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got.Load().(string)), &sent); err != nil {
		t.Fatal(err)
	}
	if string(sent["stream_options"]) != `{"include_usage":true,"other":1}` || string(sent["n"]) != "2" || string(sent["model"]) != `"mock-chat"` {
		t.Fatalf("streaming body sent upstream: %s", got.Load())
	}
}

func TestDenialsAre429WithTheLimitAndRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ deny, code, typ, mention string }{
		{quota.LimitRequestsPerMinute, "rate_limit_exceeded", "requests", "requests per minute"},
		{quota.LimitTokensPerMinute, "rate_limit_exceeded", "tokens", "tokens per minute"},
		{quota.LimitConcurrentRequests, "rate_limit_exceeded", "requests", "concurrent"},
		{quota.LimitTokensPerMonth, "insufficient_quota", "insufficient_quota", "monthly token budget"},
	} {
		t.Run(tc.deny, func(t *testing.T) {
			r := newRig(t, mockupstream.Options{}, nil)
			r.reserver.deny = tc.deny
			resp := r.post(t, "/v1/chat/completions", `{"model":"mock-chat","messages":[]}`)
			if resp.StatusCode != 429 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			e := openAIError(t, resp)
			if e["code"] != tc.code || e["type"] != tc.typ || !strings.Contains(e["message"].(string), tc.mention) {
				t.Fatalf("error %v", e)
			}
			want := "3"
			if tc.deny == quota.LimitConcurrentRequests {
				want = "1"
			}
			if resp.Header.Get("Retry-After") != want || resp.Header.Get("RateLimit") == "" {
				t.Fatalf("Retry-After %q (want %s), RateLimit %q", resp.Header.Get("Retry-After"), want, resp.Header.Get("RateLimit"))
			}
			if budget := tc.deny == quota.LimitTokensPerMonth; (resp.Header.Get("x-should-retry") == "false") != budget {
				t.Fatalf("x-should-retry %q on a %s denial", resp.Header.Get("x-should-retry"), tc.deny)
			}
			if len(r.reserver.settlements()) != 0 {
				t.Fatal("a denied request was settled")
			}
		})
	}
}

func TestABudgetRefusalRetriesWhenTheNextUTCMonthBegins(t *testing.T) {
	t.Parallel()
	// A budget too small for the request has no retry time of its own.
	r := &Reservation{Limits: []quota.LimitStatus{{Name: quota.LimitTokensPerMonth, Result: limiter.Result{Limit: 100}}}}
	h := http.Header{}
	before := time.Now()
	e := denial(h, r)
	after := time.Now()
	retry, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64)
	if err != nil {
		t.Fatalf("Retry-After %q", h.Get("Retry-After"))
	}
	renews := limiter.NextMonth(after)
	if low, high := int64(renews.Sub(after).Seconds()), int64(renews.Sub(before).Seconds())+1; retry < low || retry > high {
		t.Fatalf("Retry-After %d, want the %d–%d seconds to %s", retry, low, high, renews)
	}
	if !strings.Contains(e.Message, renews.Format("2006-01-02 00:00 UTC")) || h.Get("x-should-retry") != "false" || e.status != http.StatusTooManyRequests {
		t.Fatalf("%d %q, x-should-retry %q", e.status, e.Message, h.Get("x-should-retry"))
	}
	if got := limiter.NextMonth(time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("", -5*3600))); !got.Equal(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("next month after 31 December 23:59 UTC-5 (1 January UTC): %s", got)
	}
	if got := longWait(24*24*time.Hour + 3*time.Hour + 10*time.Minute); got != "24d3h" {
		t.Fatalf("longWait: %q", got)
	}
}

func TestUpstreamFailuresAre502Or504AndRefunded(t *testing.T) {
	t.Parallel()
	slow := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// With the body read, the server watches the connection, so the
		// context ends as soon as the gateway gives up and hangs up.
		_, _ = io.Copy(io.Discard, req.Body)
		select {
		case <-req.Context().Done():
		case <-time.After(time.Second): // slower than the header timeout; not a wait of the test's
		}
	})
	for _, tc := range []struct {
		name     string
		opts     mockupstream.Options
		upstream http.Handler
		status   int
		code     string
	}{
		{"upstream 500", mockupstream.Options{ErrorRate: 1}, nil, 502, "upstream_error"},
		{"upstream slow", mockupstream.Options{}, slow, 504, "upstream_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts, tc.upstream, func(o *Options) { o.HeaderTimeout = 200 * time.Millisecond })
			resp := r.post(t, "/v1/chat/completions", `{"model":"mock-chat","stream":true,"messages":[{"role":"user","content":"x"}]}`)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if e := openAIError(t, resp); e["code"] != tc.code {
				t.Fatalf("code %v, want %s", e["code"], tc.code)
			}
			if got := r.reserver.waitSettled(t, 1); !got[0].Failed || len(got) != 1 {
				t.Fatalf("settlements %+v, want one refund", got)
			}
		})
	}
	t.Run("upstream down", func(t *testing.T) {
		r := newRig(t, mockupstream.Options{}, nil)
		r.upstream.Close()
		resp := r.post(t, "/v1/embeddings", `{"model":"mock-embed","input":"x"}`)
		if resp.StatusCode != 502 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := r.reserver.waitSettled(t, 1); !got[0].Failed {
			t.Fatalf("settled %+v, want a refund", got)
		}
	})
}

func TestAClientThatLeavesMidStreamIsChargedWhatWasDelivered(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{CompletionTokens: 1000, ChunkDelay: 5 * time.Millisecond}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", r.srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"mock-chat","stream":true,"messages":[{"role":"user","content":"abcdefgh"}]}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	for seen := 0; seen < 3; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			seen++
		}
	}
	cancel()
	resp.Body.Close()
	got := r.reserver.waitSettled(t, 1)
	if len(got) != 1 || got[0].Failed || got[0].PromptTokens != 2 || got[0].CompletionTokens < 3 || got[0].CompletionTokens >= 1000 {
		t.Fatalf("settled %+v, want the prompt estimate and the chunks delivered", got)
	}
	r.gw.Wait()
	if n := len(r.reserver.settlements()); n != 1 {
		t.Fatalf("%d settlements, want exactly 1", n)
	}
}

func TestCORSAllowsOnlyTheTenantsOrigins(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{}, nil)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "OPTIONS", r.srv.URL+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := preflight(testOrigin)
	if ok.StatusCode != 204 || ok.Header.Get("Access-Control-Allow-Origin") != testOrigin ||
		ok.Header.Get("Access-Control-Allow-Headers") != "authorization, content-type, x-stainless-os" {
		t.Fatalf("preflight from an allowed origin: %d %v", ok.StatusCode, ok.Header)
	}
	if bad := preflight("https://evil.example"); bad.StatusCode != 403 || bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from an unknown origin: %d %v", bad.StatusCode, bad.Header)
	}
	resp := r.post(t, "/v1/embeddings", `{"model":"mock-embed","input":"x"}`, "Origin", testOrigin)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != testOrigin ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "x-ratelimit-remaining-tokens") {
		t.Fatalf("request from the tenant's origin: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestModelsListsWhatTheTenantMayUse(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{}, nil)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", r.srv.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string
		Data   []struct{ ID, Object, OwnedBy string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "mock-chat" || list.Data[1].ID != "mock-embed" || list.Data[0].Object != "model" {
		t.Fatalf("models: %d %+v", resp.StatusCode, list)
	}
}

// A provider written into the configuration reaches no variable of the
// node's environment outside the allowed prefix, and no link-local
// (metadata) address.
func TestAProviderCannotReachTheNodesSecretsOrMetadata(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	upstream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls.Add(1) })
	r := newRig(t, mockupstream.Options{}, upstream, func(o *Options) {
		o.Getenv = func(k string) string { return "secret-of-" + k }
	})
	r.cfg.providers[0].ApiKeyEnv = "AWS_SECRET_ACCESS_KEY"
	if resp := r.post(t, "/v1/chat/completions", `{"model":"mock-chat","messages":[]}`); resp.StatusCode != http.StatusBadGateway || calls.Load() != 0 {
		t.Fatalf("a provider naming AWS_SECRET_ACCESS_KEY: status %d, %d upstream calls; want 502 and none", resp.StatusCode, calls.Load())
	}
	for _, addr := range []string{"169.254.169.254:80", "[fe80::1]:443", "[fd00:ec2::254]:80", "[64:ff9b::a9fe:a9fe]:80"} {
		if err := refuseLinkLocal("tcp", addr, nil); err == nil {
			t.Errorf("dialing %s was not refused", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:8070", "10.1.2.3:443", "[2001:db8::1]:443", "[64:ff9b::a01:203]:443"} {
		if err := refuseLinkLocal("tcp", addr, nil); err != nil {
			t.Errorf("dialing %s (a self-hosted model may live there): %v", addr, err)
		}
	}
}

// Through an HTTP(S)_PROXY the dialer sees only the proxy: the upstream's
// host is checked before the proxy is used, as an address (IPv6 forms that
// carry the metadata service's IPv4 address too) or by what its name
// resolves to.
func TestAProxiedUpstreamCannotReachMetadata(t *testing.T) {
	t.Parallel()
	proxyURL, _ := url.Parse("http://proxy.internal:3128")
	viaProxy := func(*http.Request) (*url.URL, error) { return proxyURL, nil }
	names := map[string][]net.IPAddr{
		"metadata.example": {{IP: net.ParseIP("10.0.0.1")}, {IP: net.ParseIP("169.254.169.254")}},
		"models.example":   {{IP: net.ParseIP("10.0.0.2")}},
	}
	lookup := func(_ context.Context, host string) ([]net.IPAddr, error) {
		if a, ok := names[host]; ok {
			return a, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	choose := refuseProxiedLinkLocal(viaProxy, lookup)
	for _, host := range []string{"169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]",
		"[64:ff9b:1::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "[::a9fe:a9fe]", "metadata.example"} {
		req := httptest.NewRequest(http.MethodPost, "http://"+host+"/v1/chat/completions", nil)
		if via, err := choose(req); err == nil {
			t.Errorf("%s through the proxy: got %v, want refused", host, via)
		}
	}
	for _, host := range []string{"10.1.2.3", "[2001:db8::1]", "models.example", "only-the-proxy-knows.example"} {
		req := httptest.NewRequest(http.MethodPost, "http://"+host+"/v1/chat/completions", nil)
		if via, err := choose(req); err != nil || via != proxyURL {
			t.Errorf("%s through the proxy: %v, %v; want the proxy", host, via, err)
		}
	}
	direct := refuseProxiedLinkLocal(func(*http.Request) (*url.URL, error) { return nil, nil }, lookup)
	if via, err := direct(httptest.NewRequest(http.MethodPost, "http://169.254.169.254/", nil)); via != nil || err != nil {
		t.Errorf("without a proxy the dialer checks: got %v, %v", via, err)
	}
}

// A node that holds as many settlements as it may takes no new request:
// a 503 that says so, in OpenAI's shape.
func TestAnOverloadedNodeAnswers503(t *testing.T) {
	t.Parallel()
	r := newRig(t, mockupstream.Options{}, nil)
	r.reserver.fail = fmt.Errorf("reserving: %w", quota.ErrOverloaded)
	resp := r.post(t, "/v1/chat/completions", `{"model":"mock-chat","messages":[]}`)
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "overloaded" {
		t.Fatalf("status %d, code %q; want 503 overloaded", resp.StatusCode, body.Error.Code)
	}
}
