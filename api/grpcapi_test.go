package api

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/limiter"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota/quotapb"
)

func newGRPCClient(t *testing.T, n *cluster.Node) tollgatev1.RateLimiterClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tollgatev1.RegisterRateLimiterServer(srv, GRPCService(n))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tollgatev1.NewRateLimiterClient(conn)
}

func rpmLimit(limit int64) *tollgatev1.Limit {
	return quotapb.LimitToProto(limiter.Limit{Name: "rpm", Limit: limit, Period: time.Minute})
}

func TestGRPCCheckAdmitsExactlyTheLimit(t *testing.T) {
	t.Parallel()
	n, _, _ := newTestNode(t)
	c := newGRPCClient(t, n)
	req := &tollgatev1.CheckRequest{Tenant: "t1", Limits: []*tollgatev1.Limit{rpmLimit(10)}}
	for i := range 10 {
		resp, err := c.Check(t.Context(), req)
		if err != nil || !resp.Allowed || resp.Owner != "node-a" {
			t.Fatalf("check %d: %v %v", i, resp, err)
		}
	}
	resp, err := c.Check(t.Context(), req)
	if err != nil || resp.Allowed || resp.Limits[0].RetryAfter.AsDuration() != 6*time.Second {
		t.Fatalf("11th check: %v %v", resp, err)
	}
}

func TestGRPCBadInput(t *testing.T) {
	t.Parallel()
	n, _, _ := newTestNode(t)
	c := newGRPCClient(t, n)
	good := func() *tollgatev1.CheckRequest {
		return &tollgatev1.CheckRequest{Tenant: "t", Limits: []*tollgatev1.Limit{rpmLimit(5)}}
	}
	cases := map[string]func(r *tollgatev1.CheckRequest){
		"missing tenant":     func(r *tollgatev1.CheckRequest) { r.Tenant = "" },
		"tokens with limits": func(r *tollgatev1.CheckRequest) { r.Tokens = 5 },
		"limit zero":         func(r *tollgatev1.CheckRequest) { r.Limits[0].Limit = 0 },
		"period zero":        func(r *tollgatev1.CheckRequest) { r.Limits[0].Period = nil },
		"period over year":   func(r *tollgatev1.CheckRequest) { r.Limits[0].Period = durationpb.New(400 * 24 * time.Hour) },
		"unknown algorithm":  func(r *tollgatev1.CheckRequest) { r.Limits[0].Algorithm = 42 },
		"negative hits":      func(r *tollgatev1.CheckRequest) { r.Hits = proto.Int64(-1) },
		"nil limit":          func(r *tollgatev1.CheckRequest) { r.Limits[0] = nil },
	}
	for name, mutate := range cases {
		req := good()
		mutate(req)
		_, err := c.Check(t.Context(), req)
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() == "" {
			t.Errorf("%s: %v, want InvalidArgument with a message", name, err)
		}
	}
	// Without limits the tenant's plan applies, and "t" has none.
	if _, err := c.Check(t.Context(), &tollgatev1.CheckRequest{Tenant: "t"}); status.Code(err) != codes.NotFound {
		t.Errorf("plan check of an unknown tenant: %v, want NotFound", err)
	}
	// One bad check in a batch fails the batch and consumes nothing.
	bad := good()
	bad.Limits[0].Limit = -1
	_, err := c.CheckBatch(t.Context(), &tollgatev1.CheckBatchRequest{Requests: []*tollgatev1.CheckRequest{good(), bad}})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "requests[1].limits[0].limit: must be > 0, got -1" {
		t.Fatalf("batch: %v", err)
	}
	if got := storeEntries(t, n); got != 0 {
		t.Fatalf("bad input changed state: %d entries", got)
	}
}

func TestGRPCCheckBatch(t *testing.T) {
	t.Parallel()
	n, _, _ := newTestNode(t)
	c := newGRPCClient(t, n)
	reqs := make([]*tollgatev1.CheckRequest, 12)
	for i := range reqs {
		reqs[i] = &tollgatev1.CheckRequest{Tenant: "t", Limits: []*tollgatev1.Limit{rpmLimit(10)}}
	}
	resp, err := c.CheckBatch(t.Context(), &tollgatev1.CheckBatchRequest{Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for _, r := range resp.Responses {
		if r.Allowed {
			allowed++
		}
	}
	if allowed != 10 || len(resp.Responses) != 12 {
		t.Fatalf("batch admitted %d of %d, want 10 of 12", allowed, len(resp.Responses))
	}
}
