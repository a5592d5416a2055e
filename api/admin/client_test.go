package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is what a test server was sent.
type request struct{ method, path, auth, ctype, body string }

// seen holds the last request a test server was sent.
type seen struct {
	mu  sync.Mutex
	req request
}

func (s *seen) last() request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.req
}

// serve answers every request with status and body, and records it.
func serve(t *testing.T, status int, body string) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.req = request{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func client(t *testing.T, server, token string) *Client {
	t.Helper()
	c, err := NewClient(server, token, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestA2xxAnswerIsDecoded(t *testing.T) {
	srv, s := serve(t, http.StatusCreated, `{"id":"tg_ab","prefix":"tg_ab","tenant":"acme","name":"ci","revoked":false,"key":"tg_secret"}`)
	k, err := client(t, srv.URL, "").CreateKey(t.Context(), "acme", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Key{ID: "tg_ab", Prefix: "tg_ab", Tenant: "acme", Name: "ci", Key: "tg_secret"}); k != want {
		t.Errorf("key %+v, want %+v", k, want)
	}
	if got, want := s.last(), (request{"POST", "/admin/v1/keys", "", "application/json", `{"tenant":"acme","name":"ci"}`}); got != want {
		t.Errorf("sent %+v, want %+v", got, want)
	}
}

func TestDoTakesTheAnswerAsItCameAndEscapesNames(t *testing.T) {
	answer := `{"plans": [ {"name":"gold"} ]}`
	srv, s := serve(t, http.StatusOK, answer)
	c := client(t, srv.URL, "")
	var raw json.RawMessage
	if err := c.Do(t.Context(), http.MethodGet, "/admin/v1/plans", nil, &raw); err != nil || string(raw) != answer {
		t.Fatalf("answer %q, %v; want %q", raw, err, answer)
	}
	if r := s.last(); r.ctype != "" || r.body != "" {
		t.Errorf("a call without a body sent %q (%s)", r.body, r.ctype)
	}
	if err := c.DeleteTenant(t.Context(), "a/b c"); err != nil {
		t.Fatal(err)
	}
	if r := s.last(); r.method != "DELETE" || r.path != "/admin/v1/tenants/a%2Fb%20c" {
		t.Errorf("sent %s %s", r.method, r.path)
	}
}

func TestA4xxAnswerIsAnErrorWithTheServersMessage(t *testing.T) {
	srv, _ := serve(t, http.StatusConflict, `{"error":{"code":"already_exists","message":"plan \"gold\" exists"}}`)
	err := client(t, srv.URL, "").PutPlan(t.Context(), Plan{Name: "gold"})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "already_exists" || e.Message != `plan "gold" exists` {
		t.Fatalf("err %#v", err)
	}
	if got, want := err.Error(), `plan "gold" exists (HTTP 409)`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestAnAnswerNotTheAPIsIsAnErrorWithItsStatus(t *testing.T) {
	srv, _ := serve(t, http.StatusBadGateway, "<html>upstream gone</html>")
	err := client(t, srv.URL, "").Do(t.Context(), http.MethodGet, "/admin/v1/status", nil, nil)
	if got, want := fmt.Sprint(err), "bad gateway (HTTP 502)"; got != want {
		t.Fatalf("err %q, want %q", got, want)
	}
}

func TestA2xxAnswerThatIsNotJSONIsAnError(t *testing.T) {
	srv, _ := serve(t, http.StatusOK, "<html>a login page</html>")
	err := client(t, srv.URL, "").Do(t.Context(), http.MethodGet, "/admin/v1/plans", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "something other than JSON") {
		t.Fatalf("err %v", err)
	}
}

func TestIsNotFound(t *testing.T) {
	missing, _ := serve(t, http.StatusNotFound, `{"error":{"code":"not_found","message":"plan \"x\" not found"}}`)
	refused, _ := serve(t, http.StatusForbidden, `{"error":{"code":"admin_disabled","message":"the admin API is off"}}`)
	_, notFound := client(t, missing.URL, "").GetPlan(t.Context(), "x")
	_, forbidden := client(t, refused.URL, "").GetPlan(t.Context(), "x")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{notFound, true},
		{fmt.Errorf("plan set: %w", notFound), true},
		{forbidden, false},
		{errors.New("plan \"x\" not found (HTTP 404)"), false},
		{nil, false},
	} {
		if got := IsNotFound(tc.err); got != tc.want {
			t.Errorf("IsNotFound(%v) = %t", tc.err, got)
		}
	}
}

func TestNewClientTakesHostPortOrAnHTTPURL(t *testing.T) {
	for server, want := range map[string]string{
		"127.0.0.1:8081":            "http://127.0.0.1:8081",
		"http://node-1:8081/":       "http://node-1:8081",
		"https://admin.example/tg/": "https://admin.example/tg",
	} {
		c, err := NewClient(server, "", 0)
		if err != nil || c.URL() != want {
			t.Errorf("NewClient(%q): %v, %v; want %s", server, c, err, want)
		}
	}
	for _, server := range []string{"", "ftp://node-1", "http://", "http://[::1", "node-1:8081/%zz"} {
		if c, err := NewClient(server, "", 0); !errors.Is(err, ErrBadServer) || c != nil {
			t.Errorf("NewClient(%q) = %v, %v; want ErrBadServer", server, c, err)
		}
	}
}

func TestTheTokenIsSentAsABearerToken(t *testing.T) {
	srv, s := serve(t, http.StatusOK, `{}`)
	if err := client(t, srv.URL, "s3cret").Do(t.Context(), http.MethodGet, "/admin/v1/status", nil, nil); err != nil {
		t.Fatal(err)
	}
	if auth := s.last().auth; auth != "Bearer s3cret" {
		t.Errorf("Authorization %q, want Bearer s3cret", auth)
	}
	if err := client(t, srv.URL, "").Do(t.Context(), http.MethodGet, "/admin/v1/status", nil, nil); err != nil {
		t.Fatal(err)
	}
	if auth := s.last().auth; auth != "" {
		t.Errorf("without a token, Authorization %q", auth)
	}
}

func TestARefusedConnectionNamesTheServer(t *testing.T) {
	srv, _ := serve(t, http.StatusOK, `{}`)
	c := client(t, srv.URL, "")
	srv.Close()
	err := c.Do(t.Context(), http.MethodGet, "/admin/v1/status", nil, nil)
	if want := "cannot reach a tollgate node at " + srv.URL + ": connection refused"; !errors.Is(err, ErrRefused) || err.Error() != want {
		t.Fatalf("err %v, want %s", err, want)
	}
}

func TestNoAnswerInTimeIsErrNoAnswer(t *testing.T) {
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hung.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := client(t, hung.URL, "").Do(ctx, http.MethodGet, "/admin/v1/plans", nil, nil)
	if !errors.Is(err, ErrNoAnswer) || err.Error() != "no answer from "+hung.URL {
		t.Errorf("past the context's deadline: %v", err)
	}

	c, err := NewClient(hung.URL, "", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(t.Context(), http.MethodGet, "/admin/v1/plans", nil, nil); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("past the client's timeout: %v", err)
	}
}
