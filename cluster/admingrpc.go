package cluster

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// AdminService returns the gRPC Admin service; register it with
// AdminInterceptor, which checks the admin token.
func (n *Node) AdminService() configv1.AdminServer { return &adminService{n: n} }

// AdminInterceptor refuses Admin calls without the admin token in the
// "authorization" metadata; other services pass.
func (n *Node) AdminInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, "/"+configv1.Admin_ServiceDesc.ServiceName+"/") {
			return handler(ctx, req)
		}
		if !n.cfg.Admin.Open && n.cfg.Admin.Token == "" {
			return nil, status.Error(codes.PermissionDenied, "the admin API is off on this node: start it with --admin-token")
		}
		md, _ := metadata.FromIncomingContext(ctx)
		if auth := md.Get("authorization"); len(auth) != 1 || !n.cfg.Admin.allows(auth[0]) {
			return nil, status.Error(codes.Unauthenticated, "missing or wrong admin token")
		}
		resp, err := handler(ctx, req)
		if err != nil {
			err = quotapb.Status(err)
		}
		return resp, err
	}
}

type adminService struct {
	configv1.UnimplementedAdminServer
	n *Node
}

func (s *adminService) PutPlan(ctx context.Context, in *configv1.PutPlanRequest) (*configv1.Plan, error) {
	return s.n.putPlan(ctx, in.GetPlan(), putMode{in.GetCreate(), in.GetUpdate()})
}

func (s *adminService) GetPlan(_ context.Context, in *configv1.GetRequest) (*configv1.Plan, error) {
	return s.n.getPlan(in.GetName())
}

func (s *adminService) ListPlans(context.Context, *configv1.ListRequest) (*configv1.PlanList, error) {
	return &configv1.PlanList{Plans: s.n.Config().Plans()}, nil
}

func (s *adminService) DeletePlan(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "plan", in.GetName())
}

func (s *adminService) delete(ctx context.Context, kind, name string) (*configv1.Deleted, error) {
	if err := s.n.write(ctx, deletion(kind, name)); err != nil {
		return nil, err
	}
	return &configv1.Deleted{Name: name}, nil
}

func (s *adminService) PutTenant(ctx context.Context, in *configv1.PutTenantRequest) (*configv1.Tenant, error) {
	return s.n.putTenant(ctx, in.GetTenant(), putMode{in.GetCreate(), in.GetUpdate()})
}

func (s *adminService) GetTenant(_ context.Context, in *configv1.GetRequest) (*configv1.Tenant, error) {
	return s.n.getTenant(in.GetName())
}

func (s *adminService) ListTenants(context.Context, *configv1.ListRequest) (*configv1.TenantList, error) {
	return &configv1.TenantList{Tenants: s.n.Config().Tenants()}, nil
}

func (s *adminService) DeleteTenant(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "tenant", in.GetName())
}

func (s *adminService) CreateKey(ctx context.Context, in *configv1.CreateKeyRequest) (*configv1.CreatedKey, error) {
	k, secret, err := s.n.createKey(ctx, in.GetTenant(), in.GetName())
	if err != nil {
		return nil, err
	}
	return &configv1.CreatedKey{Key: k, Secret: secret}, nil
}

func (s *adminService) ListKeys(_ context.Context, in *configv1.ListKeysRequest) (*configv1.KeyList, error) {
	keys, err := s.n.keysOf(in.GetTenant())
	if err != nil {
		return nil, err
	}
	return &configv1.KeyList{Keys: keys}, nil
}

func (s *adminService) RevokeKey(ctx context.Context, in *configv1.GetRequest) (*configv1.APIKey, error) {
	return s.n.revokeKey(ctx, in.GetName())
}

func (s *adminService) PutProvider(ctx context.Context, in *configv1.PutProviderRequest) (*configv1.Provider, error) {
	return s.n.putProvider(ctx, in.GetProvider(), putMode{in.GetCreate(), in.GetUpdate()})
}

func (s *adminService) GetProvider(_ context.Context, in *configv1.GetRequest) (*configv1.Provider, error) {
	return s.n.getProvider(in.GetName())
}

func (s *adminService) ListProviders(context.Context, *configv1.ListRequest) (*configv1.ProviderList, error) {
	return &configv1.ProviderList{Providers: s.n.Config().Providers()}, nil
}

func (s *adminService) DeleteProvider(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "provider", in.GetName())
}

func (s *adminService) GetUsage(_ context.Context, in *configv1.UsageRequest) (*configv1.UsageReport, error) {
	return s.n.usageReport(in.GetTenant(), in.GetMonth())
}
