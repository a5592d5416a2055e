package admin

import (
	"context"
	"net/http"
	"net/url"
)

// The calls that callers make of the API's records by name; the rest go
// through Do.

// GetPlan returns the plan named name.
func (c *Client) GetPlan(ctx context.Context, name string) (Plan, error) {
	var p Plan
	err := c.Do(ctx, http.MethodGet, "/admin/v1/plans/"+url.PathEscape(name), nil, &p)
	return p, err
}

// PutPlan creates p, or replaces the plan of its name.
func (c *Client) PutPlan(ctx context.Context, p Plan) error {
	return c.Do(ctx, http.MethodPut, "/admin/v1/plans/"+url.PathEscape(p.Name), p, nil)
}

// DeletePlan deletes the plan named name.
func (c *Client) DeletePlan(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/admin/v1/plans/"+url.PathEscape(name), nil, nil)
}

// PutTenant creates t, or replaces the tenant of its ID.
func (c *Client) PutTenant(ctx context.Context, t Tenant) error {
	return c.Do(ctx, http.MethodPut, "/admin/v1/tenants/"+url.PathEscape(t.ID), t, nil)
}

// DeleteTenant deletes the tenant id; its usage stays in the ledger.
func (c *Client) DeleteTenant(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/admin/v1/tenants/"+url.PathEscape(id), nil, nil)
}

// CreateKey creates a key for tenant, named name (which may be empty),
// and returns it with the key itself, which no later answer shows.
func (c *Client) CreateKey(ctx context.Context, tenant, name string) (Key, error) {
	var k Key
	err := c.Do(ctx, http.MethodPost, "/admin/v1/keys", KeyRequest{Tenant: tenant, Name: name}, &k)
	return k, err
}

// PutProvider creates p, or replaces the provider of its name.
func (c *Client) PutProvider(ctx context.Context, p Provider) error {
	return c.Do(ctx, http.MethodPut, "/admin/v1/providers/"+url.PathEscape(p.Name), p, nil)
}
