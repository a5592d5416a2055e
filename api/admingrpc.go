package api

import (
	"context"

	"github.com/tollgate/tollgate/cluster"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// AdminService returns the gRPC Admin service over admin; register it with
// AuthInterceptor, which checks the admin token.
func AdminService(admin Admin) configv1.AdminServer { return &adminService{admin: admin} }

type adminService struct {
	configv1.UnimplementedAdminServer
	admin Admin
}

func (s *adminService) PutPlan(ctx context.Context, in *configv1.PutPlanRequest) (*configv1.Plan, error) {
	return s.admin.PutPlan(ctx, in.GetPlan(), cluster.PutMode{Create: in.GetCreate(), Update: in.GetUpdate()})
}

func (s *adminService) GetPlan(_ context.Context, in *configv1.GetRequest) (*configv1.Plan, error) {
	return s.admin.Plan(in.GetName())
}

func (s *adminService) ListPlans(context.Context, *configv1.ListRequest) (*configv1.PlanList, error) {
	return &configv1.PlanList{Plans: s.admin.Plans()}, nil
}

func (s *adminService) DeletePlan(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "plan", in.GetName())
}

func (s *adminService) delete(ctx context.Context, kind, name string) (*configv1.Deleted, error) {
	if err := s.admin.Delete(ctx, kind, name); err != nil {
		return nil, err
	}
	return &configv1.Deleted{Name: name}, nil
}

func (s *adminService) PutTenant(ctx context.Context, in *configv1.PutTenantRequest) (*configv1.Tenant, error) {
	return s.admin.PutTenant(ctx, in.GetTenant(), cluster.PutMode{Create: in.GetCreate(), Update: in.GetUpdate()})
}

func (s *adminService) GetTenant(_ context.Context, in *configv1.GetRequest) (*configv1.Tenant, error) {
	return s.admin.Tenant(in.GetName())
}

func (s *adminService) ListTenants(context.Context, *configv1.ListRequest) (*configv1.TenantList, error) {
	return &configv1.TenantList{Tenants: s.admin.Tenants()}, nil
}

func (s *adminService) DeleteTenant(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "tenant", in.GetName())
}

func (s *adminService) CreateKey(ctx context.Context, in *configv1.CreateKeyRequest) (*configv1.CreatedKey, error) {
	k, secret, err := s.admin.CreateKey(ctx, in.GetTenant(), in.GetName())
	if err != nil {
		return nil, err
	}
	return &configv1.CreatedKey{Key: k, Secret: secret}, nil
}

func (s *adminService) ListKeys(_ context.Context, in *configv1.ListKeysRequest) (*configv1.KeyList, error) {
	keys, err := s.admin.Keys(in.GetTenant())
	if err != nil {
		return nil, err
	}
	return &configv1.KeyList{Keys: keys}, nil
}

func (s *adminService) RevokeKey(ctx context.Context, in *configv1.GetRequest) (*configv1.APIKey, error) {
	return s.admin.RevokeKey(ctx, in.GetName())
}

func (s *adminService) PutProvider(ctx context.Context, in *configv1.PutProviderRequest) (*configv1.Provider, error) {
	return s.admin.PutProvider(ctx, in.GetProvider(), cluster.PutMode{Create: in.GetCreate(), Update: in.GetUpdate()})
}

func (s *adminService) GetProvider(_ context.Context, in *configv1.GetRequest) (*configv1.Provider, error) {
	return s.admin.Provider(in.GetName())
}

func (s *adminService) ListProviders(context.Context, *configv1.ListRequest) (*configv1.ProviderList, error) {
	return &configv1.ProviderList{Providers: s.admin.Providers()}, nil
}

func (s *adminService) DeleteProvider(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "provider", in.GetName())
}

func (s *adminService) GetUsage(_ context.Context, in *configv1.UsageRequest) (*configv1.UsageReport, error) {
	return s.admin.Usage(in.GetTenant(), in.GetMonth())
}

func (s *adminService) PutRLSDomain(ctx context.Context, in *configv1.PutRLSDomainRequest) (*configv1.RLSDomain, error) {
	return s.admin.PutRLSDomain(ctx, in.GetDomain(), cluster.PutMode{Create: in.GetCreate(), Update: in.GetUpdate()})
}

func (s *adminService) GetRLSDomain(_ context.Context, in *configv1.GetRequest) (*configv1.RLSDomain, error) {
	return s.admin.RLSDomain(in.GetName())
}

func (s *adminService) ListRLSDomains(context.Context, *configv1.ListRequest) (*configv1.RLSDomainList, error) {
	return &configv1.RLSDomainList{Domains: s.admin.RLSDomains()}, nil
}

func (s *adminService) DeleteRLSDomain(ctx context.Context, in *configv1.GetRequest) (*configv1.Deleted, error) {
	return s.delete(ctx, "rls domain", in.GetName())
}
