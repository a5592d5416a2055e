package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/api/admin"
)

// adminSession is what an admin verb runs with: the node to ask, and how and
// where to print the answer.
type adminSession struct {
	client *admin.Client
	json   bool // -o json: print the server's JSON as it came
	out    io.Writer
}

// do sends in as JSON (none if nil) and returns the answer's JSON body as
// it came, for -o json to print, or an error that says what to do about it.
func (a *adminSession) do(ctx context.Context, method, path string, in any) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := a.client.Do(ctx, method, path, in, &raw); err != nil {
		return nil, withHint(err)
	}
	return raw, nil
}

// getObject GETs the record at path, to change and PUT back.
func (a *adminSession) getObject(ctx context.Context, path string) (jsonObject, error) {
	raw, err := a.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var o jsonObject
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, fmt.Errorf("%s answered GET %s with something other than a JSON object", a.client.URL(), path)
	}
	return o, nil
}

// withHint adds to an error of the admin client the flag or variable of
// this command line that would fix it.
func withHint(err error) error {
	var e *admin.Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusUnauthorized:
		return fmt.Errorf("%w; set TOLLGATE_ADMIN_TOKEN or --admin-token", err)
	case errors.Is(err, admin.ErrRefused):
		return fmt.Errorf("%w (is it running? --server or TOLLGATE_SERVER says where)", err)
	case errors.Is(err, admin.ErrNoAnswer):
		return fmt.Errorf("%w within --timeout", err) // the only deadline is --timeout's
	}
	return err
}
