package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tollgate/tollgate/api/admin"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/cluster/gossip"
)

func usageCommand() command {
	return command{name: "usage", about: "what a tenant used in a month", verbs: []verb{
		{args: []string{"TENANT"}, about: "show a tenant's usage: the total, by model, then by day", setup: usageReport},
	}}
}

func statusCommand() command {
	return command{name: "status", about: "the state of the cluster as one node sees it", verbs: []verb{
		{about: "show the node's Raft state, the configuration's size and the members", run: clusterStatus},
	}}
}

var usageColumns = []any{"REQUESTS", "TOKENS", "PROMPT", "COMPLETION", "COST-USD"}

// usageCells is one line of a usage report after the first cells. It shows
// the cost in exact dollars from cost_micros, its unit, not cost_usd.
func usageCells(u admin.Usage, first ...any) []any {
	cost := fmt.Sprintf("%d.%06d", u.CostMicros/1e6, u.CostMicros%1e6)
	return append(first, u.Requests, u.Tokens, u.PromptTokens, u.CompletionTokens, cost)
}

func usageReport(fs *flag.FlagSet) runFunc {
	month := fs.String("month", "", "the `YYYY-MM` month (default: this month, UTC)")
	return func(ctx context.Context, a *adminSession, args []string) error {
		path := "/admin/v1/tenants/" + url.PathEscape(args[0]) + "/usage"
		if *month != "" {
			path += "?" + url.Values{"month": {*month}}.Encode()
		}
		raw, err := a.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			return err
		}
		var u admin.UsageReport
		return a.show(raw, &u, func(t *textTable) {
			t.row(append([]any{"TENANT", "MONTH"}, usageColumns...)...)
			t.row(usageCells(u.Total, u.Tenant, u.Month)...)
			if len(u.Models) > 0 {
				t.row()
				t.row(append([]any{"MODEL"}, usageColumns...)...)
			}
			for _, m := range u.Models {
				t.row(usageCells(m.Usage, m.Model)...)
			}
			if u.Checks.Requests > 0 {
				t.row(usageCells(u.Checks, "(check API)")...)
			}
			if len(u.Days) > 0 {
				t.row()
				t.row(append([]any{"DAY", "MODEL"}, usageColumns...)...)
			}
			for _, d := range u.Days {
				t.row(usageCells(d.Usage, d.Day, d.Model)...)
			}
		})
	}
}

// clusterStatus shows /admin/v1/status and the members from /v1/cluster;
// with -o json, both answers as {"status": ..., "cluster": ...}.
func clusterStatus(ctx context.Context, a *adminSession, _ []string) error {
	var both struct {
		Status  json.RawMessage `json:"status"`
		Cluster json.RawMessage `json:"cluster"`
	}
	var err error
	if both.Status, err = a.do(ctx, http.MethodGet, "/admin/v1/status", nil); err != nil {
		return err
	}
	if both.Cluster, err = a.do(ctx, http.MethodGet, "/v1/cluster", nil); err != nil {
		return err
	}
	var s cluster.RaftStatus
	var m struct {
		Members []gossip.Member `json:"members"`
	}
	if err := json.Unmarshal(both.Status, &s); err != nil {
		return fmt.Errorf("unexpected status from %s: %w", a.client.URL(), err)
	}
	if err := json.Unmarshal(both.Cluster, &m); err != nil {
		return fmt.Errorf("unexpected members from %s: %w", a.client.URL(), err)
	}
	raw, err := json.Marshal(both)
	if err != nil {
		return err
	}
	return a.show(raw, nil, func(t *textTable) {
		t.row("NODE", "STATE", "LEADER", "APPLIED", "VOTERS", "NONVOTERS", "PLANS", "TENANTS", "KEYS", "PROVIDERS")
		t.row(s.Node, s.State, textCell(s.Leader), s.Applied, listCell(s.Voters), listCell(s.Nonvoters), s.Plans, s.Tenants, s.Keys, s.Providers)
		t.row()
		t.row("MEMBER", "STATE", "READY", "API", "GRPC")
		for _, mem := range m.Members {
			t.row(mem.Name, mem.State, mem.Ready, textCell(mem.APIAddr), textCell(mem.GRPCAddr))
		}
	})
}
