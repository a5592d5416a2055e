package main

import (
	"context"
	"flag"
	"net/http"
	"net/url"

	"github.com/tollgate/tollgate/api/admin"
)

func keyCommand() command {
	return command{name: "key", about: "the API keys tenants call with", verbs: []verb{
		{name: "create", args: []string{"TENANT"}, about: "create a key for a tenant and print it, this once", setup: keyCreate},
		{name: "list", args: []string{"[TENANT]"}, about: "list the keys, of one tenant or all (never the keys themselves)", run: keyList},
		{name: "revoke", args: []string{"ID"}, about: "revoke a key for good", run: keyRevoke},
	}}
}

func keyTable(t *textTable, keys ...admin.Key) {
	t.row("ID", "TENANT", "NAME", "CREATED", "STATUS")
	for _, k := range keys {
		status := "active"
		if k.Revoked {
			status = "revoked " + timeCell(k.RevokedAt)
		}
		t.row(k.ID, k.Tenant, textCell(k.Name), timeCell(k.CreatedAt), status)
	}
}

func keyCreate(fs *flag.FlagSet) runFunc {
	name := fs.String("name", "", "a `NAME` to tell the key by, such as where it is used")
	return func(ctx context.Context, a *adminSession, args []string) error {
		path := "/admin/v1/tenants/" + url.PathEscape(args[0]) + "/keys"
		raw, err := a.do(ctx, http.MethodPost, path, map[string]string{"name": *name})
		if err != nil {
			return err
		}
		var k admin.Key
		return a.show(raw, &k, func(t *textTable) {
			t.row("Created key " + k.ID + " for tenant " + k.Tenant + ":")
			t.row()
			t.row("    " + k.Key)
			t.row()
			t.row("This is the only time the key is shown: store it now. Tollgate keeps only its hash.")
		})
	}
}

func keyList(ctx context.Context, a *adminSession, args []string) error {
	path := "/admin/v1/keys"
	if len(args) == 1 {
		path = "/admin/v1/tenants/" + url.PathEscape(args[0]) + "/keys"
	}
	raw, err := a.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	var out struct {
		Keys []admin.Key `json:"keys"`
	}
	return a.show(raw, &out, func(t *textTable) { keyTable(t, out.Keys...) })
}

func keyRevoke(ctx context.Context, a *adminSession, args []string) error {
	raw, err := a.do(ctx, http.MethodDelete, "/admin/v1/keys/"+url.PathEscape(args[0]), nil)
	if err != nil {
		return err
	}
	var k admin.Key
	return a.show(raw, &k, func(t *textTable) { keyTable(t, k) })
}
