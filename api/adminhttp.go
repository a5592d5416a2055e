package api

import (
	"errors"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// adminRoutes mounts the admin API on mux.
func (h *httpAPI) adminRoutes(mux *http.ServeMux) {
	handle := func(pattern string, fn func(*http.Request) (int, any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !h.auth.Admin.Open && h.auth.Admin.Token == "" {
				writeJSON(w, http.StatusForbidden, errorJSON{errorBody{Code: "admin_disabled",
					Message: "the admin API is off on this node: start it with --admin-token or TOLLGATE_ADMIN_TOKEN"}})
				return
			}
			if !h.auth.Admin.allows(r.Header.Get("Authorization")) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
				writeJSON(w, http.StatusUnauthorized, errorJSON{errorBody{Code: "unauthorized", Message: "missing or wrong admin token"}})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			code, out, err := fn(r)
			if err != nil {
				h.writeError(w, err)
				return
			}
			writeJSON(w, code, out)
		})
	}
	get := func(pattern string, fn func(*http.Request) (any, error)) {
		handle(pattern, func(r *http.Request) (int, any, error) { out, err := fn(r); return http.StatusOK, out, err })
	}

	get("GET /admin/v1/plans", func(*http.Request) (any, error) {
		return listJSON("plans", h.admin.Plans(), planToJSON), nil
	})
	get("GET /admin/v1/plans/{name}", func(r *http.Request) (any, error) {
		return answer(planToJSON)(h.admin.Plan(r.PathValue("name")))
	})
	handle("POST /admin/v1/plans", func(r *http.Request) (int, any, error) {
		return putJSON(r, "", planFromJSON, func(p *configv1.Plan) (*configv1.Plan, error) {
			return h.admin.PutPlan(r.Context(), p, cluster.PutMode{Create: true})
		}, planToJSON, http.StatusCreated)
	})
	handle("PUT /admin/v1/plans/{name}", func(r *http.Request) (int, any, error) {
		return putJSON(r, r.PathValue("name"), planFromJSON, func(p *configv1.Plan) (*configv1.Plan, error) {
			return h.admin.PutPlan(r.Context(), p, cluster.PutMode{})
		}, planToJSON, http.StatusOK)
	})
	handle("DELETE /admin/v1/plans/{name}", h.deleteHandler("plan"))

	get("GET /admin/v1/tenants", func(*http.Request) (any, error) {
		return listJSON("tenants", h.admin.Tenants(), tenantToJSON), nil
	})
	get("GET /admin/v1/tenants/{id}", func(r *http.Request) (any, error) {
		return answer(tenantToJSON)(h.admin.Tenant(r.PathValue("id")))
	})
	handle("POST /admin/v1/tenants", func(r *http.Request) (int, any, error) {
		return putJSON(r, "", tenantFromJSON, func(t *configv1.Tenant) (*configv1.Tenant, error) {
			return h.admin.PutTenant(r.Context(), t, cluster.PutMode{Create: true})
		}, tenantToJSON, http.StatusCreated)
	})
	handle("PUT /admin/v1/tenants/{id}", func(r *http.Request) (int, any, error) {
		return putJSON(r, r.PathValue("id"), tenantFromJSON, func(t *configv1.Tenant) (*configv1.Tenant, error) {
			return h.admin.PutTenant(r.Context(), t, cluster.PutMode{})
		}, tenantToJSON, http.StatusOK)
	})
	handle("DELETE /admin/v1/tenants/{id}", h.deleteHandler("tenant"))
	get("GET /admin/v1/tenants/{id}/usage", func(r *http.Request) (any, error) {
		rep, err := h.admin.Usage(r.PathValue("id"), r.URL.Query().Get("month"))
		if err != nil {
			return nil, err
		}
		return usageReportToJSON(rep), nil
	})

	createKey := func(r *http.Request, tenant string) (int, any, error) {
		var in admin.KeyRequest
		if r.ContentLength != 0 {
			if err := decodeJSON(r.Body, &in); err != nil && !errors.Is(err, io.EOF) {
				return 0, nil, err
			}
		}
		if tenant == "" {
			tenant = in.Tenant
		}
		if tenant == "" {
			return 0, nil, quota.Invalid("tenant", "is required")
		}
		k, secret, err := h.admin.CreateKey(r.Context(), tenant, in.Name)
		if err != nil {
			return 0, nil, err
		}
		out := keyToJSON(k)
		out.Key = secret
		return http.StatusCreated, out, nil
	}
	handle("POST /admin/v1/keys", func(r *http.Request) (int, any, error) { return createKey(r, "") })
	handle("POST /admin/v1/tenants/{id}/keys", func(r *http.Request) (int, any, error) { return createKey(r, r.PathValue("id")) })
	listKeys := func(tenant string) (any, error) {
		keys, err := h.admin.Keys(tenant)
		return listJSON("keys", keys, keyToJSON), err
	}
	get("GET /admin/v1/keys", func(r *http.Request) (any, error) { return listKeys(r.URL.Query().Get("tenant")) })
	get("GET /admin/v1/tenants/{id}/keys", func(r *http.Request) (any, error) { return listKeys(r.PathValue("id")) })
	revoke := func(r *http.Request) (any, error) {
		k, err := h.admin.RevokeKey(r.Context(), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return keyToJSON(k), nil
	}
	get("DELETE /admin/v1/keys/{id}", revoke)
	get("POST /admin/v1/keys/{id}/revoke", revoke)

	get("GET /admin/v1/providers", func(*http.Request) (any, error) {
		return listJSON("providers", h.admin.Providers(), providerToJSON), nil
	})
	get("GET /admin/v1/providers/{name}", func(r *http.Request) (any, error) {
		return answer(providerToJSON)(h.admin.Provider(r.PathValue("name")))
	})
	handle("POST /admin/v1/providers", func(r *http.Request) (int, any, error) {
		return putJSON(r, "", providerFromJSON, func(p *configv1.Provider) (*configv1.Provider, error) {
			return h.admin.PutProvider(r.Context(), p, cluster.PutMode{Create: true})
		}, providerToJSON, http.StatusCreated)
	})
	handle("PUT /admin/v1/providers/{name}", func(r *http.Request) (int, any, error) {
		return putJSON(r, r.PathValue("name"), providerFromJSON, func(p *configv1.Provider) (*configv1.Provider, error) {
			return h.admin.PutProvider(r.Context(), p, cluster.PutMode{})
		}, providerToJSON, http.StatusOK)
	})
	handle("DELETE /admin/v1/providers/{name}", h.deleteHandler("provider"))

	get("GET /admin/v1/rls", func(*http.Request) (any, error) {
		return listJSON("domains", h.admin.RLSDomains(), rlsToJSON), nil
	})
	get("GET /admin/v1/rls/{name}", func(r *http.Request) (any, error) {
		return answer(rlsToJSON)(h.admin.RLSDomain(r.PathValue("name")))
	})
	handle("POST /admin/v1/rls", func(r *http.Request) (int, any, error) {
		return putJSON(r, "", rlsFromJSON, func(d *configv1.RLSDomain) (*configv1.RLSDomain, error) {
			return h.admin.PutRLSDomain(r.Context(), d, cluster.PutMode{Create: true})
		}, rlsToJSON, http.StatusCreated)
	})
	handle("PUT /admin/v1/rls/{name}", func(r *http.Request) (int, any, error) {
		return putJSON(r, r.PathValue("name"), rlsFromJSON, func(d *configv1.RLSDomain) (*configv1.RLSDomain, error) {
			return h.admin.PutRLSDomain(r.Context(), d, cluster.PutMode{})
		}, rlsToJSON, http.StatusOK)
	})
	handle("DELETE /admin/v1/rls/{name}", h.deleteHandler("rls domain"))

	get("GET /admin/v1/status", func(*http.Request) (any, error) { return h.admin.Raft(), nil })
}

func (h *httpAPI) deleteHandler(kind string) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		if kind == "tenant" {
			name = r.PathValue("id")
		}
		if err := h.admin.Delete(r.Context(), kind, name); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]string{"deleted": name}, nil
	}
}

// answer turns a lookup's result into its JSON answer with conv, or
// passes its error on.
func answer[T any](conv func(T) any) func(T, error) (any, error) {
	return func(v T, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return conv(v), nil
	}
}

func listJSON[T any, J any](key string, items []T, conv func(T) J) map[string][]J {
	out := make([]J, len(items))
	for i, it := range items {
		out[i] = conv(it)
	}
	return map[string][]J{key: out}
}

// putJSON decodes a body into T, takes the name from the path if the body
// has none (and refuses a body that names another), and stores it.
func putJSON[T any, J any](r *http.Request, pathName string, from func(io.Reader, string) (T, error),
	store func(T) (T, error), to func(T) J, code int) (int, any, error) {
	v, err := from(r.Body, pathName)
	if err != nil {
		return 0, nil, err
	}
	v, err = store(v)
	if err != nil {
		return 0, nil, err
	}
	return code, to(v), nil
}

// nameFromPath reconciles a body's name with the one in the path.
func nameFromPath(field string, body *string, path string) error {
	switch {
	case path == "":
	case *body == "":
		*body = path
	case *body != path:
		return quota.Invalid(field, "%q differs from %q in the path", *body, path)
	}
	return nil
}

// Conversions between the admin API's JSON shapes (package api/admin) and
// the configuration's records.

func planToJSON(p *configv1.Plan) any {
	return admin.Plan{Name: p.GetName(), RequestsPerMinute: p.GetRequestsPerMinute(), TokensPerMinute: p.GetTokensPerMinute(),
		TokensPerMonth: p.GetTokensPerMonth(), MaxConcurrent: p.GetMaxConcurrent(), Priority: p.GetPriority(),
		FailurePolicy: p.GetFailurePolicy(), AllowedModels: nonNil(p.GetAllowedModels()), DefaultMaxTokens: p.GetDefaultMaxTokens()}
}

func planFromJSON(r io.Reader, path string) (*configv1.Plan, error) {
	var in admin.Plan
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	if err := nameFromPath("name", &in.Name, path); err != nil {
		return nil, err
	}
	return &configv1.Plan{Name: in.Name, RequestsPerMinute: in.RequestsPerMinute, TokensPerMinute: in.TokensPerMinute,
		TokensPerMonth: in.TokensPerMonth, MaxConcurrent: in.MaxConcurrent, Priority: in.Priority,
		FailurePolicy: in.FailurePolicy, AllowedModels: in.AllowedModels, DefaultMaxTokens: in.DefaultMaxTokens}, nil
}

func tenantToJSON(t *configv1.Tenant) any {
	out := admin.Tenant{ID: t.GetId(), Name: t.GetName(), Plan: t.GetPlan(), Status: "active",
		AllowedModels: nonNil(t.GetAllowedModels()), AllowedOrigins: nonNil(t.GetAllowedOrigins()), CreatedAt: timeOf(t.GetCreatedNanos())}
	if t.GetSuspended() {
		out.Status = "suspended"
	}
	if o := t.GetOverrides(); o != nil {
		out.Overrides = &admin.Overrides{RequestsPerMinute: o.RequestsPerMinute, TokensPerMinute: o.TokensPerMinute,
			TokensPerMonth: o.TokensPerMonth, MaxConcurrent: o.MaxConcurrent, Priority: o.Priority, FailurePolicy: o.FailurePolicy}
	}
	return out
}

func tenantFromJSON(r io.Reader, path string) (*configv1.Tenant, error) {
	var in admin.Tenant
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	if err := nameFromPath("id", &in.ID, path); err != nil {
		return nil, err
	}
	t := &configv1.Tenant{Id: in.ID, Name: in.Name, Plan: in.Plan, AllowedModels: in.AllowedModels, AllowedOrigins: in.AllowedOrigins}
	switch in.Status {
	case "", "active":
	case "suspended":
		t.Suspended = true
	default:
		return nil, quota.Invalid("status", "%q is not active or suspended", in.Status)
	}
	if o := in.Overrides; o != nil {
		t.Overrides = &configv1.Overrides{RequestsPerMinute: o.RequestsPerMinute, TokensPerMinute: o.TokensPerMinute,
			TokensPerMonth: o.TokensPerMonth, MaxConcurrent: o.MaxConcurrent, Priority: o.Priority, FailurePolicy: o.FailurePolicy}
	}
	return t, nil
}

func keyToJSON(k *configv1.APIKey) admin.Key {
	return admin.Key{ID: k.GetId(), Prefix: k.GetId(), Tenant: k.GetTenant(), Name: k.GetName(),
		CreatedAt: timeOf(k.GetCreatedNanos()), RevokedAt: timeOf(k.GetRevokedNanos()), Revoked: k.GetRevokedNanos() != 0}
}

func providerToJSON(p *configv1.Provider) any {
	return admin.Provider{Name: p.GetName(), BaseURL: p.GetBaseUrl(), APIKeyEnv: p.GetApiKeyEnv(), Models: nonNil(p.GetModels()),
		PromptPricePerMillion: dollars(p.GetPromptPriceMicros()), CompletionPricePerMillion: dollars(p.GetCompletionPriceMicros())}
}

func providerFromJSON(r io.Reader, path string) (*configv1.Provider, error) {
	var in admin.Provider
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	if err := nameFromPath("name", &in.Name, path); err != nil {
		return nil, err
	}
	prompt, err := micros("prompt_price_per_million", in.PromptPricePerMillion)
	if err != nil {
		return nil, err
	}
	completion, err := micros("completion_price_per_million", in.CompletionPricePerMillion)
	if err != nil {
		return nil, err
	}
	return &configv1.Provider{Name: in.Name, BaseUrl: in.BaseURL, ApiKeyEnv: in.APIKeyEnv, Models: in.Models,
		PromptPriceMicros: prompt, CompletionPriceMicros: completion}, nil
}

func rlsToJSON(d *configv1.RLSDomain) any {
	var descriptors func([]*configv1.RLSDescriptor) []admin.RLSDescriptor
	descriptors = func(ds []*configv1.RLSDescriptor) []admin.RLSDescriptor {
		out := make([]admin.RLSDescriptor, len(ds))
		for i, x := range ds {
			out[i] = admin.RLSDescriptor{Key: x.GetKey(), Value: x.GetValue(), ShadowMode: x.GetShadowMode()}
			if l := x.GetRateLimit(); l != nil {
				out[i].RateLimit = &admin.RLSRateLimit{Unit: l.GetUnit(), RequestsPerUnit: l.GetRequestsPerUnit(),
					UnitMultiplier: l.GetUnitMultiplier(), Unlimited: l.GetUnlimited(), Name: l.GetName()}
			}
			if len(x.GetDescriptors()) > 0 {
				out[i].Descriptors = descriptors(x.GetDescriptors())
			}
		}
		return out
	}
	return admin.RLSDomain{Domain: d.GetDomain(), Descriptors: descriptors(d.GetDescriptors()), FailurePolicy: d.GetFailurePolicy()}
}

func rlsFromJSON(r io.Reader, path string) (*configv1.RLSDomain, error) {
	var in admin.RLSDomain
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	if err := nameFromPath("domain", &in.Domain, path); err != nil {
		return nil, err
	}
	return rlsFromAdmin(in), nil
}

// rlsFromAdmin is the configuration record of an RLS domain in the
// admin API's shape.
func rlsFromAdmin(in admin.RLSDomain) *configv1.RLSDomain {
	var descriptors func([]admin.RLSDescriptor) []*configv1.RLSDescriptor
	descriptors = func(ds []admin.RLSDescriptor) []*configv1.RLSDescriptor {
		out := make([]*configv1.RLSDescriptor, len(ds))
		for i, x := range ds {
			out[i] = &configv1.RLSDescriptor{Key: x.Key, Value: x.Value, ShadowMode: x.ShadowMode, Descriptors: descriptors(x.Descriptors)}
			if l := x.RateLimit; l != nil {
				out[i].RateLimit = &configv1.RLSRateLimit{Unit: l.Unit, RequestsPerUnit: l.RequestsPerUnit,
					UnitMultiplier: l.UnitMultiplier, Unlimited: l.Unlimited, Name: l.Name}
			}
		}
		return out
	}
	return &configv1.RLSDomain{Domain: in.Domain, Descriptors: descriptors(in.Descriptors), FailurePolicy: in.FailurePolicy}
}

func usageToJSON(u *configv1.Usage) admin.Usage {
	return admin.Usage{Requests: u.GetRequests(), Tokens: u.GetTokens(), PromptTokens: u.GetPromptTokens(),
		CompletionTokens: u.GetCompletionTokens(), CostMicros: u.GetCostMicros(), CostUSD: dollars(u.GetCostMicros())}
}

func usageReportToJSON(r *configv1.UsageReport) admin.UsageReport {
	out := admin.UsageReport{Tenant: r.GetTenant(), Month: r.GetMonth(), Total: usageToJSON(r.GetTotal()), Checks: usageToJSON(r.GetChecks())}
	for _, m := range r.GetModels() {
		out.Models = append(out.Models, admin.ModelUsage{Model: m.GetModel(), Usage: usageToJSON(m.GetUsage())})
	}
	for _, d := range r.GetDays() {
		out.Days = append(out.Days, admin.DayUsage{Day: d.GetDay(), Model: d.GetModel(), Usage: usageToJSON(d.GetUsage())})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func timeOf(nanos int64) *time.Time {
	if nanos == 0 {
		return nil
	}
	t := time.Unix(0, nanos).UTC()
	return &t
}

func dollars(micros int64) float64 { return float64(micros) / 1e6 }

func micros(field string, dollars float64) (int64, error) {
	if dollars < 0 || math.IsNaN(dollars) || dollars > 1e9 {
		return 0, quota.Invalid(field, "must be between 0 and 1e9 dollars")
	}
	return int64(math.Round(dollars * 1e6)), nil
}
