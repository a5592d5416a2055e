package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/limiter"
)

// newTestNode serves the HTTP API of one node that is not started (no
// gossip, no Raft: it owns every tenant), with the admin API off.
func newTestNode(t *testing.T) (*cluster.Node, *httptest.Server, *limiter.ManualClock) {
	t.Helper()
	clock := limiter.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	log := clustertest.Logger(t)
	n := cluster.NewNode(cluster.Config{NodeName: "node-a", Clock: clock, Logger: log})
	n.SetReady(true)
	srv := httptest.NewServer(HTTPHandler(n, n.Admin(), Auth{}, log.With("component", "api")))
	t.Cleanup(srv.Close)
	return n, srv, clock
}

// storeEntries is how many limit entries n's store holds, as its
// tollgate_store_entries gauge reports.
func storeEntries(t *testing.T, n *cluster.Node) int {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tollgate_store_entries" {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	t.Fatal("no tollgate_store_entries metric")
	return 0
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

const tenLimit = `{"tenant":"t1","hits":1,"limits":[{"name":"rpm","algorithm":"token_bucket","limit":10,"period":"60s","burst":10}]}`

func TestHTTPCheckAdmitsExactlyTheLimit(t *testing.T) {
	t.Parallel()
	_, srv, _ := newTestNode(t)
	for i := range 10 {
		code, out := post(t, srv.URL+"/v1/check", tenLimit)
		if code != 200 || out["allowed"] != true || out["owner"] != "node-a" {
			t.Fatalf("check %d: %d %v", i, code, out)
		}
	}
	code, out := post(t, srv.URL+"/v1/check", tenLimit)
	lim := out["limits"].([]any)[0].(map[string]any)
	if code != 200 || out["allowed"] != false || lim["retry_after"].(float64) != 6 || lim["remaining"].(float64) != 0 {
		t.Fatalf("11th check: %d %v", code, out)
	}
	for _, want := range []string{`tollgate_checks_total{decision="allowed"} 10`, `tollgate_checks_total{decision="denied"} 1`, "tollgate_store_entries 1", "tollgate_check_duration_seconds_count 11"} {
		if m := metricsText(t, srv.URL); !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	n, srv, _ := newTestNode(t)
	lim := func(fields string) string {
		return `{"tenant":"t","limits":[{"name":"l","limit":5,"period":"1s"` + fields + `}]}`
	}
	cases := []struct {
		name, body, field string
		status            int
	}{
		{"missing tenant", `{"limits":[{"name":"l","limit":5,"period":"1s"}]}`, "tenant", 400},
		// Without limits the tenant's plan applies, and "t" has none.
		{"no limits, unknown tenant", `{"tenant":"t","limits":[]}`, "", 404},
		{"negative tokens", `{"tenant":"t","tokens":-1}`, "tokens", 400},
		{"hits and requests", `{"tenant":"t","hits":1,"requests":1}`, "requests", 400},
		// A caller cannot reach, or lock, the gateway's plan buckets.
		{"a plan's limit name", `{"tenant":"t","limits":[{"name":"requests_per_minute","limit":5,"period":"1m"}]}`, "limits[0].name", 400},
		{"hits beyond the burst", `{"tenant":"t","hits":6,"limits":[{"name":"l","limit":5,"period":"1s"}]}`, "hits", 400},
		{"a control character in the tenant", `{"tenant":"a\u0000b","limits":[{"name":"l","limit":5,"period":"1s"}]}`, "tenant", 400},
		{"a bidi override in the tenant", `{"tenant":"a\u202eb","limits":[{"name":"l","limit":5,"period":"1s"}]}`, "tenant", 400},
		{"limit zero", `{"tenant":"t","limits":[{"name":"l","limit":0,"period":"1s"}]}`, "limits[0].limit", 400},
		{"negative limit", `{"tenant":"t","limits":[{"name":"l","limit":-3,"period":"1s"}]}`, "limits[0].limit", 400},
		{"period zero", `{"tenant":"t","limits":[{"name":"l","limit":5,"period":"0s"}]}`, "limits[0].period", 400},
		{"period missing", `{"tenant":"t","limits":[{"name":"l","limit":5}]}`, "limits[0].period", 400},
		{"period negative", `{"tenant":"t","limits":[{"name":"l","limit":5,"period":"-1s"}]}`, "limits[0].period", 400},
		{"period over a year", `{"tenant":"t","limits":[{"name":"l","limit":5,"period":"9000h"}]}`, "limits[0].period", 400},
		{"period not a duration", `{"tenant":"t","limits":[{"name":"l","limit":5,"period":"soon"}]}`, "period", 400},
		{"unknown algorithm", lim(`,"algorithm":"leaky_bucket"`), "limits[0].algorithm", 400},
		{"negative hits", `{"tenant":"t","hits":-1,"limits":[{"name":"l","limit":5,"period":"1s"}]}`, "hits", 400},
		{"negative burst", lim(`,"burst":-1`), "limits[0].burst", 400},
		{"missing name", `{"tenant":"t","limits":[{"limit":5,"period":"1s"}]}`, "limits[0].name", 400},
		{"duplicate name", `{"tenant":"t","limits":[{"name":"l","limit":5,"period":"1s"},{"name":"l","limit":5,"period":"1s"}]}`, "limits[1].name", 400},
		{"malformed JSON", `{"tenant":"t",`, "body", 400},
		{"wrong type", `{"tenant":"t","limits":[{"name":"l","limit":"five","period":"1s"}]}`, "limits.limit", 400},
		{"unknown field", `{"tenant":"t","limitz":[]}`, "limitz", 400},
		{"empty body", ``, "body", 400},
		{"trailing data", tenLimit + `{}`, "body", 400},
		{"too large", `{"tenant":"` + strings.Repeat("x", 2<<20) + `"}`, "", 413},
		{"too large after the object", tenLimit + strings.Repeat(" ", 2<<20), "", 413},
		{"array body", `[1,2]`, "body", 400},
		{"calendar month negative period", `{"tenant":"t","limits":[{"name":"m","algorithm":"calendar_month","limit":5,"period":"-30s"}]}`, "limits[0].period", 400},
		{"concurrency too large", `{"tenant":"t","limits":[{"name":"c","algorithm":"concurrency","limit":1000000,"period":"30s"}]}`, "limits[0].limit", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := post(t, srv.URL+"/v1/check", c.body)
			e, _ := out["error"].(map[string]any)
			if code != c.status || e == nil || e["message"] == "" {
				t.Fatalf("status %d body %v, want %d with an error message", code, out, c.status)
			}
			if c.field != "" && e["field"] != c.field {
				t.Fatalf("field %v, want %q (message %q)", e["field"], c.field, e["message"])
			}
		})
	}
	if got := storeEntries(t, n); got != 0 {
		t.Fatalf("bad input changed state: %d entries", got)
	}
}

func TestHTTPHealthAndReadiness(t *testing.T) {
	t.Parallel()
	n, srv, _ := newTestNode(t)
	get := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 || get("/readyz") != 200 {
		t.Fatal("healthz/readyz not 200 on a ready node")
	}
	n.SetReady(false)
	if get("/readyz") != 503 || get("/healthz") != 200 {
		t.Fatal("readyz should be 503 and healthz 200 on a draining node")
	}
	if resp, _ := http.Get(srv.URL + "/v1/check"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/check: %d", resp.StatusCode)
	}
}

func TestHTTPConcurrencyLeaseRelease(t *testing.T) {
	t.Parallel()
	_, srv, _ := newTestNode(t)
	body := `{"tenant":"t","limits":[{"name":"conc","algorithm":"concurrency","limit":1,"period":"30s"}]}`
	_, first := post(t, srv.URL+"/v1/check", body)
	lease := first["limits"].([]any)[0].(map[string]any)["lease_id"]
	if first["allowed"] != true || lease == nil {
		t.Fatalf("first: %v", first)
	}
	if _, second := post(t, srv.URL+"/v1/check", body); second["allowed"] != false {
		t.Fatalf("second lease admitted: %v", second)
	}
	rel := `{"tenant":"t","limit":{"name":"conc","algorithm":"concurrency","limit":1,"period":"30s"},"lease_id":"` + lease.(string) + `"}`
	if code, out := post(t, srv.URL+"/v1/release", rel); code != 200 {
		t.Fatalf("release: %d %v", code, out)
	}
	if _, third := post(t, srv.URL+"/v1/check", body); third["allowed"] != true {
		t.Fatalf("after release: %v", third)
	}
}

// A node that holds the most concurrency leases it may answers the next
// lease with 503 overloaded and Retry-After, and says so in its metrics.
func TestHTTPCheckBeyondTheLeaseTableIs503Overloaded(t *testing.T) {
	t.Parallel()
	log := clustertest.Logger(t)
	n := cluster.NewNode(cluster.Config{NodeName: "node-a", Logger: log, MaxLeases: 1})
	n.SetReady(true)
	srv := httptest.NewServer(HTTPHandler(n, n.Admin(), Auth{}, log.With("component", "api")))
	t.Cleanup(srv.Close)
	lease := `{"tenant":"%s","limits":[{"name":"conc","algorithm":"concurrency","limit":5,"period":"30s"}]}`
	if code, out := post(t, srv.URL+"/v1/check", fmt.Sprintf(lease, "a")); code != 200 || out["allowed"] != true {
		t.Fatalf("first lease: %d %v", code, out)
	}
	resp, err := http.Post(srv.URL+"/v1/check", "application/json", strings.NewReader(fmt.Sprintf(lease, "b")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || out.Error.Code != "overloaded" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(out.Error.Message, "leases") {
		t.Fatalf("a lease beyond the table: %d %+v (Retry-After %q), want 503 overloaded", resp.StatusCode, out, resp.Header.Get("Retry-After"))
	}
	for _, want := range []string{"tollgate_store_leases 1", "tollgate_store_lease_refusals_total 1"} {
		if m := metricsText(t, srv.URL); !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
