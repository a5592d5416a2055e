package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// newTransport is the client side towards upstreams: many connections
// kept open per provider, since every request is a fresh call.
func newTransport(o *Options) *http.Transport {
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	proxy := http.ProxyFromEnvironment
	if !o.AllowPrivateUpstreams {
		dialer.Control = refuseLinkLocal
		proxy = refuseProxiedLinkLocal(proxy, net.DefaultResolver.LookupIPAddr)
	}
	return &http.Transport{
		Proxy:                 proxy,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.HeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// upstreamRequest builds the call to the provider: its base URL (up to the
// API version, as OpenAI's SDKs take it) and the endpoint, its own key
// from the environment, and none of the client's credentials.
func (g *Gateway) upstreamRequest(ctx context.Context, p *configv1.Provider, endpoint string, body []byte, in *http.Request) (*http.Request, error) {
	url := strings.TrimSuffix(p.GetBaseUrl(), "/") + endpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a := in.Header.Get("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	if env := p.GetApiKeyEnv(); env != "" {
		if !strings.HasPrefix(env, g.opts.KeyEnvPrefix) {
			g.log.Warn("a provider's api_key_env is not one this node reads; not called", "provider", p.GetName(), "api_key_env", env, "prefix", g.opts.KeyEnvPrefix)
			return nil, errKeyEnvRefused
		}
		if key := g.opts.Getenv(env); key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
	}
	return req, nil
}

// errKeyEnvRefused: a provider names an environment variable outside the
// node's allowed prefix.
var errKeyEnvRefused = errors.New("the provider's api_key_env is outside the allowed prefix")

// refuseLinkLocal is the upstream dialer's check of the address it is
// about to connect to, after any DNS resolution (so a name that resolves
// there is caught too): link-local addresses, the cloud metadata
// services' among them, are no upstream.
func refuseLinkLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip != nil && quota.MetadataAddress(ip) {
		return fmt.Errorf("upstream %s is a link-local (metadata) address: refused without --allow-private-upstreams", address)
	}
	return nil
}

// refuseProxiedLinkLocal wraps the transport's choice of proxy: through an
// HTTP(S)_PROXY the dialer sees only the proxy's address, so the upstream's
// own host is checked here, as an address or by what it resolves to on
// this node. (A name only the proxy can resolve is left to the proxy.)
func refuseProxiedLinkLocal(next func(*http.Request) (*url.URL, error), lookup func(context.Context, string) ([]net.IPAddr, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		via, err := next(req)
		if err != nil || via == nil {
			return via, err // dialed directly: the dialer checks
		}
		host := req.URL.Hostname()
		if ip := net.ParseIP(host); ip != nil {
			if quota.MetadataAddress(ip) {
				return nil, fmt.Errorf("upstream %s is a link-local (metadata) address: refused without --allow-private-upstreams", host)
			}
			return via, nil
		}
		addrs, err := lookup(req.Context(), host)
		if err != nil {
			return via, nil
		}
		for _, a := range addrs {
			if quota.MetadataAddress(a.IP) {
				return nil, fmt.Errorf("upstream %s resolves to the link-local (metadata) address %s: refused without --allow-private-upstreams", host, a.IP)
			}
		}
		return via, nil
	}
}

// upstreamFailure maps a failed call to the answer the client gets: 504
// when the upstream took too long, 502 otherwise.
func upstreamFailure(err error) *apiError {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errUpstreamTO
	}
	return errUpstream
}

// upstreamStatus maps an upstream's error status: its own failures and
// refusals of the gateway's credentials are the gateway's problem (502);
// other client errors (a bad parameter, say) are the caller's, passed on
// as they are.
func upstreamStatus(code int) (*apiError, bool) {
	switch {
	case code < 400:
		return nil, false
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return newError(http.StatusBadGateway, typeServer, "upstream_error", "The upstream model provider refused the gateway's credentials."), true
	case code == http.StatusGatewayTimeout:
		return errUpstreamTO, true
	case code >= 500:
		return newError(http.StatusBadGateway, typeServer, "upstream_error", "The upstream model provider failed: "+http.StatusText(code)+"."), true
	}
	return nil, true
}

// cost prices usage by the provider's table (micro-dollars per million
// tokens), rounded to the nearest micro-dollar.
func cost(p *configv1.Provider, prompt, completion int64) int64 {
	const perMillion = 1_000_000
	micros := float64(prompt)*float64(p.GetPromptPriceMicros()) + float64(completion)*float64(p.GetCompletionPriceMicros())
	return int64(micros/perMillion + 0.5)
}
