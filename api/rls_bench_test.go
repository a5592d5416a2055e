package api

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// Envoy's ShouldRateLimit against the native tollgate.v1 Check, over the
// same public gRPC port of the same cluster, one descriptor (one limit) a
// call, 1,000 counters, 64 callers on one connection, in one run:
//
//	go test -run '^$' -bench EnvoyRLS -benchtime 3s -count 6 ./api
func BenchmarkEnvoyRLS(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		c := newRaftCluster(b, nodes)
		rules := `{"domain": "bench", "descriptors": [{"key": "remote_address", "rate_limit": {"unit": "hour", "requests_per_unit": 1000000000}}]}`
		if code := call(b, c.server("node-1"), "PUT", "/admin/v1/rls/bench", rules, nil); code != 200 {
			b.Fatalf("PUT rules: %d", code)
		}
		c.waitConfig(func(v *config.View) bool { _, ok := v.RLSDomain("bench"); return ok })
		conn := dialPublic(b, c.server("node-1"))
		native, envoy := tollgatev1.NewRateLimiterClient(conn), rlsv3.NewRateLimitServiceClient(conn)
		names := make([]string, 1000)
		for i := range names {
			names[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		}
		size := strconv.Itoa(nodes) + "-node"
		b.Run(size+"/native-check", func(b *testing.B) {
			// A fixed window of an hour, as the RLS rule is.
			limit := quotapb.LimitToProto(limiter.Limit{Name: "rls_3600s", Algorithm: limiter.FixedWindow, Limit: 1_000_000_000, Period: time.Hour})
			parallel(b, func(i uint64) error {
				_, err := native.Check(b.Context(), &tollgatev1.CheckRequest{Tenant: "ip/" + names[i%1000], Limits: []*tollgatev1.Limit{limit}})
				return err
			})
		})
		b.Run(size+"/envoy-rls", func(b *testing.B) {
			parallel(b, func(i uint64) error {
				_, err := envoy.ShouldRateLimit(b.Context(), &rlsv3.RateLimitRequest{Domain: "bench", Descriptors: []*ratelimitv3.RateLimitDescriptor{
					{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "remote_address", Value: names[i%1000]}}}}})
				return err
			})
		})
		c.stopAll()
	}
}

// parallel runs call from 64 goroutines (on 2 cores), each with its own
// sequence of numbers.
func parallel(b *testing.B, call func(i uint64) error) {
	var seq atomic.Uint64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(seq.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
