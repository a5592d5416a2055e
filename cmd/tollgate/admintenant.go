package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/api/admin"
)

func tenantCommand() command {
	return command{name: "tenant", about: "the customers whose use is limited", verbs: []verb{
		{name: "list", about: "list the tenants", run: tenantList},
		{name: "get", args: []string{"ID"}, about: "show a tenant", run: tenantGet},
		{name: "create", args: []string{"ID"}, about: "create a tenant on a plan; limits given override the plan's", setup: tenantCreate},
		{name: "update", args: []string{"ID"}, about: "change the given fields of a tenant; limits given override the plan's", setup: tenantUpdate},
		{name: "suspend", args: []string{"ID"}, about: "refuse all of a tenant's requests until resumed", run: tenantStatus("suspended")},
		{name: "resume", args: []string{"ID"}, about: "accept a suspended tenant's requests again", run: tenantStatus("active")},
		{name: "delete", args: []string{"ID"}, about: "delete a tenant", run: deleter("tenant", "/admin/v1/tenants/")},
	}}
}

// tenantView is what the tables show of a tenant: its overrides as they
// came, which take the place of the embedded Tenant's in decoding, so
// that the table shows those the server sent whatever their type.
type tenantView struct {
	admin.Tenant
	Overrides map[string]json.RawMessage `json:"overrides"`
}

func tenantTable(t *textTable, tenants ...tenantView) {
	t.row("ID", "NAME", "PLAN", "STATUS", "OVERRIDES", "MODELS", "ORIGINS", "CREATED")
	for _, v := range tenants {
		t.row(v.ID, textCell(v.Name), v.Plan, v.Status, overridesCell(v.Overrides),
			listCell(v.AllowedModels), listCell(v.AllowedOrigins), timeCell(v.CreatedAt))
	}
}

// overridesCell shows a tenant's overrides as the flags that set them.
func overridesCell(o map[string]json.RawMessage) string {
	var out []string
	for _, f := range [][2]string{{"requests_per_minute", "rpm"}, {"tokens_per_minute", "tpm"},
		{"tokens_per_month", "tokens-per-month"}, {"max_concurrent", "max-concurrent"},
		{"priority", "priority"}, {"failure_policy", "failure-policy"}} {
		if v, ok := o[f[0]]; ok {
			out = append(out, f[1]+"="+strings.Trim(string(v), `"`))
		}
	}
	return listCell(out)
}

func showTenant(a *adminSession, raw []byte) error {
	var v tenantView
	return a.show(raw, &v, func(t *textTable) { tenantTable(t, v) })
}

func tenantPath(id string) string { return "/admin/v1/tenants/" + url.PathEscape(id) }

func tenantList(ctx context.Context, a *adminSession, _ []string) error {
	raw, err := a.do(ctx, http.MethodGet, "/admin/v1/tenants", nil)
	if err != nil {
		return err
	}
	var out struct {
		Tenants []tenantView `json:"tenants"`
	}
	return a.show(raw, &out, func(t *textTable) { tenantTable(t, out.Tenants...) })
}

func tenantGet(ctx context.Context, a *adminSession, args []string) error {
	raw, err := a.do(ctx, http.MethodGet, tenantPath(args[0]), nil)
	if err != nil {
		return err
	}
	return showTenant(a, raw)
}

// tenantFlags set a tenant's own fields and override its plan's limits.
type tenantFlags struct{ own, overrides fieldFlags }

func bindTenantFlags(fs *flag.FlagSet) tenantFlags {
	f := tenantFlags{own: newFieldFlags(fs), overrides: newFieldFlags(fs)}
	f.own.string("plan", "plan", "the `PLAN` the tenant is on")
	f.own.string("name", "name", "a display `NAME`")
	f.own.list("models", "allowed_models", "the models the tenant may use, within its plan's, as `a,b` (empty: the plan's)")
	f.own.list("origins", "allowed_origins", "the browser origins allowed to use the tenant's keys, as `o1,o2`")
	f.overrides.limits()
	return f
}

// apply changes tenant as the flags say, keeping the overrides not given.
func (f tenantFlags) apply(tenant jsonObject) error {
	maps.Copy(tenant, f.own.patch)
	if len(f.overrides.patch) == 0 {
		return nil
	}
	o := jsonObject{}
	if raw, ok := tenant["overrides"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &o); err != nil {
			return fmt.Errorf("unexpected overrides in the tenant: %w", err)
		}
	}
	maps.Copy(o, f.overrides.patch)
	tenant.set("overrides", o)
	return nil
}

func tenantCreate(fs *flag.FlagSet) runFunc {
	f := bindTenantFlags(fs)
	return func(ctx context.Context, a *adminSession, args []string) error {
		if _, ok := f.own.patch["plan"]; !ok {
			return errors.New("--plan is required")
		}
		tenant := jsonObject{}
		tenant.set("id", args[0])
		if err := f.apply(tenant); err != nil {
			return err
		}
		raw, err := a.do(ctx, http.MethodPost, "/admin/v1/tenants", tenant)
		if err != nil {
			return err
		}
		return showTenant(a, raw)
	}
}

func tenantUpdate(fs *flag.FlagSet) runFunc {
	f := bindTenantFlags(fs)
	return func(ctx context.Context, a *adminSession, args []string) error {
		if len(f.own.patch)+len(f.overrides.patch) == 0 {
			return errors.New("nothing to change: give a flag for each field to change (tollgate tenant -h lists them)")
		}
		return putTenant(ctx, a, args[0], f.apply)
	}
}

// tenantStatus suspends or resumes a tenant.
func tenantStatus(status string) runFunc {
	return func(ctx context.Context, a *adminSession, args []string) error {
		return putTenant(ctx, a, args[0], func(tenant jsonObject) error {
			tenant.set("status", status)
			return nil
		})
	}
}

// putTenant changes a tenant. The API only replaces whole tenants, so it
// reads the tenant, changes it and writes it back; a change made by someone
// else in between is lost.
func putTenant(ctx context.Context, a *adminSession, id string, change func(jsonObject) error) error {
	tenant, err := a.getObject(ctx, tenantPath(id))
	if err != nil {
		return err
	}
	if err := change(tenant); err != nil {
		return err
	}
	raw, err := a.do(ctx, http.MethodPut, tenantPath(id), tenant)
	if err != nil {
		return err
	}
	return showTenant(a, raw)
}
