package api

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/cluster/clustertest"
)

func dialPublic(t testing.TB, s *Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// grpc.health.v1 says SERVING exactly while the node is ready, with no
// token (probes have none), and NOT_SERVING to its watchers as soon as the
// node starts to leave.
func TestGRPCHealthFollowsReadiness(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 2, func(cfg *ServerConfig) { cfg.Auth.CheckToken = "check-secret" })
	health := healthpb.NewHealthClient(dialPublic(t, c.server("node-2")))
	for _, svc := range []string{"", "tollgate.v1.RateLimiter", "tollgate.config.v1.Admin", "envoy.service.ratelimit.v3.RateLimitService"} {
		clustertest.Eventually(t, 5*time.Second, "node-2 serving "+svc, func() bool {
			resp, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		})
	}
	if _, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Fatalf("health of an unknown service: %v, want NotFound", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: "tollgate.v1.RateLimiter"})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch answer: %v %v", first, err)
	}
	left := make(chan struct{})
	go func() { c.leave("node-2"); close(left) }()
	next, err := watch.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch answer once node-2 leaves: %v %v, want NOT_SERVING", next, err)
	}
	<-left
}

func TestReflectionListsThePublicServicesAndCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 2, func(cfg *ServerConfig) { cfg.Reflection = cfg.Node.NodeName == "node-1" })
	list := func(s *Server) ([]string, error) {
		stream, err := reflectionpb.NewServerReflectionClient(dialPublic(t, s)).ServerReflectionInfo(t.Context())
		if err != nil {
			return nil, err
		}
		// A Send the server has refused says io.EOF; the status comes
		// with the Recv.
		_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		var names []string
		for _, svc := range resp.GetListServicesResponse().GetService() {
			names = append(names, svc.GetName())
		}
		return names, nil
	}
	names, err := list(c.server("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tollgate.v1.RateLimiter", "tollgate.config.v1.Admin", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
	if slices.Contains(names, "tollgate.peer.v1.Peer") {
		t.Error("the public port lists the peer service")
	}
	if _, err := list(c.server("node-2")); status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection with it off: %v, want Unimplemented", err)
	}
}
