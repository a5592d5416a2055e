package main

import (
	"context"
	"flag"
	"maps"
	"net/http"
	"net/url"

	"github.com/tollgate/tollgate/api/admin"
)

func planCommand() command {
	return command{name: "plan", about: "the tiers of limits tenants are on", verbs: []verb{
		{name: "list", about: "list the plans", run: planList},
		{name: "get", args: []string{"NAME"}, about: "show a plan", run: planGet},
		{name: "create", args: []string{"NAME"}, about: "create a plan; a limit not given is 0, no limit", setup: planCreate},
		{name: "set", args: []string{"NAME"}, about: "change the given fields of a plan, creating it if missing", setup: planSet},
		{name: "delete", args: []string{"NAME"}, about: "delete a plan", run: deleter("plan", "/admin/v1/plans/")},
	}}
}

func planTable(t *textTable, plans ...admin.Plan) {
	t.row("NAME", "RPM", "TPM", "TOKENS/MONTH", "MAX-CONCURRENT", "PRIORITY", "FAILURE-POLICY", "MODELS")
	for _, p := range plans {
		t.row(p.Name, limitCell(p.RequestsPerMinute), limitCell(p.TokensPerMinute), limitCell(p.TokensPerMonth),
			limitCell(p.MaxConcurrent), p.Priority, textCell(p.FailurePolicy), listCell(p.AllowedModels))
	}
}

func showPlan(a *adminSession, raw []byte) error {
	var p admin.Plan
	return a.show(raw, &p, func(t *textTable) { planTable(t, p) })
}

func planPath(name string) string { return "/admin/v1/plans/" + url.PathEscape(name) }

func planList(ctx context.Context, a *adminSession, _ []string) error {
	raw, err := a.do(ctx, http.MethodGet, "/admin/v1/plans", nil)
	if err != nil {
		return err
	}
	var out struct {
		Plans []admin.Plan `json:"plans"`
	}
	return a.show(raw, &out, func(t *textTable) { planTable(t, out.Plans...) })
}

func planGet(ctx context.Context, a *adminSession, args []string) error {
	raw, err := a.do(ctx, http.MethodGet, planPath(args[0]), nil)
	if err != nil {
		return err
	}
	return showPlan(a, raw)
}

func planFlags(fs *flag.FlagSet) fieldFlags {
	f := newFieldFlags(fs)
	f.limits()
	f.list("models", "allowed_models", "the models the plan allows, as `a,b` (empty: all)")
	f.int("default-max-tokens", "default_max_tokens", "completion tokens a gateway request reserves when it sets no max_tokens (0: the gateway's --default-max-tokens)")
	return f
}

func planCreate(fs *flag.FlagSet) runFunc {
	f := planFlags(fs)
	return func(ctx context.Context, a *adminSession, args []string) error {
		plan := jsonObject{}
		plan.set("name", args[0])
		maps.Copy(plan, f.patch)
		raw, err := a.do(ctx, http.MethodPost, "/admin/v1/plans", plan)
		if err != nil {
			return err
		}
		return showPlan(a, raw)
	}
}

func planSet(fs *flag.FlagSet) runFunc {
	f := planFlags(fs)
	return func(ctx context.Context, a *adminSession, args []string) error {
		plan, err := a.getObject(ctx, planPath(args[0]))
		if admin.IsNotFound(err) {
			plan, err = jsonObject{}, nil // the PUT creates it
			plan.set("name", args[0])
		}
		if err != nil {
			return err
		}
		maps.Copy(plan, f.patch)
		raw, err := a.do(ctx, http.MethodPut, planPath(args[0]), plan)
		if err != nil {
			return err
		}
		return showPlan(a, raw)
	}
}

// deleter deletes the record named by the argument from collection.
func deleter(kind, collection string) runFunc {
	return func(ctx context.Context, a *adminSession, args []string) error {
		raw, err := a.do(ctx, http.MethodDelete, collection+url.PathEscape(args[0]), nil)
		if err != nil {
			return err
		}
		return a.show(raw, nil, func(t *textTable) { t.row("deleted " + kind + " " + args[0]) })
	}
}
