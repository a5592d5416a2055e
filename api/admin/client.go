package admin

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
	"time"
)

// maxAnswer bounds what the client reads of one answer; the biggest, a
// month of usage by day and model, is far smaller.
const maxAnswer = 64 << 20

// Client calls one node's admin API. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string // sent as a bearer token; empty sends no Authorization
	http  *http.Client
}

// NewClient returns a client of the node at server, host:port or an
// http(s) URL, that sends token (if not empty) as a bearer token.
// timeout bounds each request; with 0, only the caller's context does.
func NewClient(server, token string, timeout time.Duration) (*Client, error) {
	s := server
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is %w", server, ErrBadServer)
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, http: &http.Client{Timeout: timeout}}, nil
}

// URL is the node's address as the client calls it, and as its errors
// name it.
func (c *Client) URL() string { return c.base }

// Do sends in as JSON (no body if nil) to path and decodes the answer into
// out (unless nil; a *json.RawMessage takes it as it came). An answer
// other than 2xx is an *Error carrying the server's message.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
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
		return c.unreachable(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.base, c.unreachable(ctx, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp.StatusCode, raw)
	}
	if !json.Valid(raw) {
		return fmt.Errorf("%s answered %s %s with something other than JSON", c.base, method, path)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("unexpected answer from %s to %s %s: %w", c.base, method, path, err)
	}
	return nil
}

// unreachable explains a failure to get an answer, naming the server.
func (c *Client) unreachable(ctx context.Context, err error) error {
	switch {
	// The dial error's own text repeats the address, twice.
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach a tollgate node at %s: %w", c.base, ErrRefused)
	// The context's deadline, or the client's timeout, which passes for one.
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w from %s", ErrNoAnswer, c.base)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL
	}
	return fmt.Errorf("cannot reach a tollgate node at %s: %w", c.base, err)
}
