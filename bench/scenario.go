package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// scenario sends one kind of request.
type scenario interface {
	// do sends one request for tenant to the target with index target.
	do(ctx context.Context, target int, tenant string) outcome
	close()
}

// limitName is the one limit the check scenarios send.
const limitName = "bench"

// checkHTTP posts inline-limit checks to /v1/check.
type checkHTTP struct {
	urls   []string
	client *http.Client
	limit  string // the JSON of the limit
	hits   int64
	auth   string // the Authorization header, if the nodes want a check token
}

func newCheckHTTP(cfg *Config, targets []string) *checkHTTP {
	s := &checkHTTP{client: newHTTPClient(cfg.Timeout), hits: cfg.Hits,
		limit: fmt.Sprintf(`{"name":%q,"algorithm":"token_bucket","limit":%d,"period":"%s"}`, limitName, cfg.Limit, cfg.Period)}
	for _, t := range targets {
		s.urls = append(s.urls, baseURL(t)+"/v1/check")
	}
	if cfg.CheckToken != "" {
		s.auth = "Bearer " + cfg.CheckToken
	}
	return s
}

func (s *checkHTTP) do(ctx context.Context, target int, tenant string) outcome {
	body := fmt.Sprintf(`{"tenant":%q,"hits":%d,"limits":[%s]}`, tenant, s.hits, s.limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[target], strings.NewReader(body))
	if err != nil {
		return outcome{errKind: "request"}
	}
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return outcome{errKind: errKind(err)}
	}
	defer resp.Body.Close()
	var answer struct {
		Allowed bool `json:"allowed"`
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return outcome{errKind: "http_" + strconv.Itoa(resp.StatusCode)}
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return outcome{errKind: "bad_answer"}
	}
	return outcome{allowed: answer.Allowed}
}

func (s *checkHTTP) close() { s.client.CloseIdleConnections() }

// checkGRPC calls tollgate.v1.RateLimiter/Check, one connection a node.
type checkGRPC struct {
	conns   []*grpc.ClientConn
	clients []tollgatev1.RateLimiterClient
	limit   *tollgatev1.Limit
	hits    int64
}

func newCheckGRPC(cfg *Config, targets []string) (*checkGRPC, error) {
	s := &checkGRPC{hits: cfg.Hits, limit: &tollgatev1.Limit{Name: limitName, Algorithm: tollgatev1.Algorithm_ALGORITHM_TOKEN_BUCKET,
		Limit: cfg.Limit, Period: durationpb.New(cfg.Period)}}
	for _, t := range targets {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if cfg.CheckToken != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(cfg.CheckToken)))
		}
		conn, err := grpc.NewClient(t, opts...)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("targets: %s: %w", t, err)
		}
		s.conns = append(s.conns, conn)
		s.clients = append(s.clients, tollgatev1.NewRateLimiterClient(conn))
	}
	return s, nil
}

func (s *checkGRPC) do(ctx context.Context, target int, tenant string) outcome {
	resp, err := s.clients[target].Check(ctx, &tollgatev1.CheckRequest{Tenant: tenant, Hits: &s.hits, Limits: []*tollgatev1.Limit{s.limit}})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return outcome{errKind: "grpc_" + strings.ToLower(st.Code().String())}
		}
		return outcome{errKind: errKind(err)}
	}
	return outcome{allowed: resp.GetAllowed()}
}

func (s *checkGRPC) close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// bearerToken sends the check token with every call. The connection is
// plaintext (the nodes' gRPC port is), so it does not ask for transport
// security.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: timeout}).DialContext,
	}}
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}

// errKind names a failure for the report.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "reset"
	}
	return "other"
}
