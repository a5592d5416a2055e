package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func TestAdminTokenIsCheckedWhateverTheSchemesCase(t *testing.T) {
	t.Parallel()
	auth := TokenAuth{Token: "s3cret"}
	for header, want := range map[string]bool{
		"Bearer s3cret": true, "bearer s3cret": true, "BEARER s3cret": true, "Bearer  s3cret": true,
		"Bearer wrong": false, "Basic s3cret": false, "Bearers3cret": false, "s3cret": false, "": false, "Bearer ": false,
	} {
		if got := auth.allows(header); got != want {
			t.Errorf("allows(%q) = %v, want %v", header, got, want)
		}
	}
	if (TokenAuth{}).allows("Bearer ") {
		t.Error("no token configured, yet an empty one passes")
	}
	if !(TokenAuth{Open: true}).allows("") {
		t.Error("an open admin API refuses")
	}
}

// With a check token, the check API over HTTP and gRPC asks for it, and
// forwarding between the nodes still works (the peer plane does not).
func TestTheCheckTokenGuardsTheCheckAPI(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 2, func(cfg *ServerConfig) { cfg.Auth.CheckToken = "ct-s3cret" })
	s := c.running()[0]
	body := `{"tenant":"t-%d","limits":[{"name":"l","limit":5,"period":"1m"}]}`
	post := func(i int, auth string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+s.APIAddr()+"/v1/check", strings.NewReader(fmt.Sprintf(body, i)))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(0, ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code := post(0, "Bearer wrong"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", code)
	}
	// Tenants on both nodes: some checks are forwarded to the other.
	for i := range 8 {
		if code := post(i, "bearer ct-s3cret"); code != http.StatusOK {
			t.Fatalf("check %d with the token: %d", i, code)
		}
	}

	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := tollgatev1.NewRateLimiterClient(conn)
	req := &tollgatev1.CheckRequest{Tenant: "g", Limits: []*tollgatev1.Limit{rpmLimit(10)}}
	if _, err := client.Check(t.Context(), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC check without the token: %v, want Unauthenticated", err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer ct-s3cret")
	if resp, err := client.Check(ctx, req); err != nil || !resp.GetAllowed() {
		t.Fatalf("gRPC check with the token: %v %v", resp, err)
	}
}
