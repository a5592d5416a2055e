package proxy

import (
	"net/http"
	"slices"
	"strings"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// authenticate finds the caller's tenant by API key, in the local
// configuration: the key's hash is looked up, never the key itself.
func authenticate(cfg Config, r *http.Request) (*configv1.Tenant, *apiError) {
	key := ""
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, errNoKey
		}
		key = strings.TrimSpace(token)
	} else {
		key = r.Header.Get(headerAPIKey)
	}
	if key == "" {
		return nil, errNoKey
	}
	k, ok := cfg.VerifyKey(key)
	if !ok {
		return nil, errBadKey
	}
	t, ok := cfg.Tenant(k.GetTenant())
	if !ok {
		return nil, errBadKey
	}
	if t.GetSuspended() {
		return nil, errSuspended
	}
	return t, nil
}

// allowCORS checks a request's Origin against the tenant's allowed
// origins and, if allowed, lets the browser read the answer. A request
// without Origin is not a browser's cross-origin call.
func allowCORS(w http.ResponseWriter, r *http.Request, t *configv1.Tenant) *apiError {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if !slices.Contains(t.GetAllowedOrigins(), origin) {
		return errOrigin
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", exposedHeaders)
	return nil
}

// exposedHeaders are the answer headers a browser client may read.
const exposedHeaders = "RateLimit, RateLimit-Policy, Retry-After, X-Request-Id, " +
	"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, " +
	"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"

// preflight answers a CORS preflight. It carries no key, so it cannot name
// its tenant: an origin that some tenant allows passes, and the request
// that follows is checked against its own tenant's origins.
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) (status int) {
	origin := r.Header.Get("Origin")
	if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	if !g.opts.Config().OriginAllowed(origin) {
		writeError(w, errOrigin)
		return errOrigin.status
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		// Browser SDKs send headers of their own; the key is checked on
		// the request itself.
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// modelAllowed applies the tenant's allowed models, else its plan's; an
// empty list allows every model.
func modelAllowed(t *configv1.Tenant, p *configv1.Plan, model string) bool {
	allowed := t.GetAllowedModels()
	if len(allowed) == 0 {
		allowed = p.GetAllowedModels()
	}
	return len(allowed) == 0 || slices.Contains(allowed, model)
}
