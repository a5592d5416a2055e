package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/cluster/clustertest"
)

// envoyRules is a file as envoyproxy/ratelimit reads it. The windows are a
// year long (aligned to the epoch, as Envoy's are), so that none ends
// while the test runs.
const envoyRules = `
domain: e2e
descriptors:
  - key: remote_address
    rate_limit:
      unit: year
      requests_per_unit: 4
  - key: database
    value: users
    shadow_mode: true
    rate_limit:
      unit: YEAR
      requests_per_unit: 1
`

// `tollgate rls set -f` writes an envoyproxy/ratelimit file through one
// node; Envoy's protocol, spoken to each of three real nodes, then admits
// exactly the limit.
func TestEnvoyRLSEndToEnd(t *testing.T) {
	t.Parallel()
	// Windows are epoch-aligned 365-day spans: never start within a minute
	// of one's end.
	const year = 365 * 24 * time.Hour
	if left := year - time.Duration(time.Now().UnixNano()%int64(year)); left < time.Minute {
		time.Sleep(left)
	}
	c := startRealCluster(t, 3)
	file := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(file, []byte(envoyRules), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		return map[string]string{"TOLLGATE_ADMIN_TOKEN": "e2e-secret", "TOLLGATE_SERVER": "http://" + c.nodes[0].apiAddr}[k]
	}
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"rls", "set", "-f", file}, env, &out, &errOut); err != nil {
		t.Fatalf("rls set: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "4 per year") || !strings.Contains(out.String(), "database=users") {
		t.Errorf("rls set printed:\n%s", out.String())
	}
	clustertest.Eventually(t, 10*time.Second, "every node to hold the domain", func() bool {
		for _, p := range c.nodes {
			resp, err := http.Get("http://" + p.apiAddr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://"+p.apiAddr+"/admin/v1/rls/e2e", nil)
			req.Header.Set("Authorization", "Bearer e2e-secret")
			if resp, err = http.DefaultClient.Do(req); err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
		}
		return true
	})

	var clients []rlsv3.RateLimitServiceClient
	for _, p := range c.nodes {
		conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		clients = append(clients, rlsv3.NewRateLimitServiceClient(conn))
	}
	ask := func(i int, key, value string) *rlsv3.RateLimitResponse {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		resp, err := clients[i%len(clients)].ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "e2e",
			Descriptors: []*ratelimitv3.RateLimitDescriptor{{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: key, Value: value}}}}})
		if err != nil {
			t.Fatalf("ShouldRateLimit through node %d: %v", i%len(clients)+1, err)
		}
		return resp
	}
	ok := 0
	for i := range 12 {
		if ask(i, "remote_address", "203.0.113.7").GetOverallCode() == rlsv3.RateLimitResponse_OK {
			ok++
		}
	}
	if ok != 4 {
		t.Errorf("%d of 12 OK across 3 nodes, want exactly 4", ok)
	}
	for i := range 3 {
		if code := ask(i, "database", "users").GetOverallCode(); code != rlsv3.RateLimitResponse_OK {
			t.Errorf("shadow rule, ask %d: %v, want OK", i+1, code)
		}
	}

	out.Reset()
	if err := run(t.Context(), []string{"rls", "list"}, env, &out, &errOut); err != nil || !strings.Contains(out.String(), "e2e") {
		t.Errorf("rls list: %v\n%s", err, out.String())
	}
	if err := run(t.Context(), []string{"rls", "delete", "e2e"}, env, &out, &errOut); err != nil {
		t.Fatalf("rls delete: %v", err)
	}
	clustertest.Eventually(t, 10*time.Second, "the domain gone, so its descriptors limit nothing", func() bool {
		return ask(0, "remote_address", "203.0.113.7").GetOverallCode() == rlsv3.RateLimitResponse_OK
	})
}
