package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// maxAnswer bounds what the client reads of one answer; the biggest, a
// month of usage by day and model, is far smaller.
const maxAnswer = 64 << 20

// adminClient calls one node's admin API.
type adminClient struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string // sent as a bearer token; empty sends no Authorization
	http  *http.Client
}

// newAdminClient accepts host:port or an http(s) URL for server.
func newAdminClient(server, token string) (*adminClient, error) {
	s := server
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--server: %q is not host:port or an http(s) URL", server)
	}
	return &adminClient{base: strings.TrimRight(u.String(), "/"), token: token, http: &http.Client{}}, nil
}

// apiError is an answer other than 2xx from the admin API.
type apiError struct {
	Status  int
	Code    string // the server's error code, such as not_found
	Message string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	if e.Status == http.StatusUnauthorized {
		msg += "; set TOLLGATE_ADMIN_TOKEN or --admin-token"
	}
	return msg
}

func isNotFound(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// do sends in as JSON (none if nil) and returns the answer's JSON body, or
// an *apiError carrying the server's message.
func (c *adminClient) do(ctx context.Context, method, path string, in any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.base, c.unreachable(ctx, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, answerError(resp.StatusCode, raw)
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s answered %s %s with something other than JSON", c.base, method, path)
	}
	return raw, nil
}

// answerError reads the API's {"error":{...}} body, or makes do with the
// status for a body that is not one (a proxy's, say).
func answerError(status int, raw []byte) *apiError {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		return &apiError{Status: status, Code: body.Error.Code, Message: body.Error.Message}
	}
	return &apiError{Status: status, Message: strings.ToLower(http.StatusText(status))}
}

// unreachable explains a failure to get an answer, naming the server.
func (c *adminClient) unreachable(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach a tollgate node at %s: connection refused (is it running? --server or TOLLGATE_SERVER says where)", c.base)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s within --timeout", c.base)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL
	}
	return fmt.Errorf("cannot reach a tollgate node at %s: %w", c.base, err)
}
