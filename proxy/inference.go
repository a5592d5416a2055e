package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// exchange is one proxied request on its way through the gateway: what
// the audit line reports, and the reservation to settle exactly once.
type exchange struct {
	g        *Gateway
	id       string
	start    time.Time
	tenant   string
	model    string
	endpoint string
	stream   bool
	status   int
	errCode  string
	owner    string
	degraded bool
	provider *configv1.Provider
	res      *Reservation // admitted and not yet settled
	usage    quota.Usage
	ctx      context.Context
}

// admit finds the caller's tenant by key in the current configuration and
// checks the request's origin against it.
func (x *exchange) admit(w http.ResponseWriter, r *http.Request) (Config, *configv1.Tenant, *apiError) {
	cfg := x.g.opts.Config()
	t, apiErr := authenticate(cfg, r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	x.tenant = t.GetId()
	if apiErr := allowCORS(w, r, t); apiErr != nil {
		return nil, nil, apiErr
	}
	return cfg, t, nil
}

// run proxies one chat, completion or embeddings request as far as an
// answer; an error it returns has not been written yet.
func (x *exchange) run(w http.ResponseWriter, r *http.Request, ep endpoint) *apiError {
	g := x.g
	cfg, t, apiErr := x.admit(w, r)
	if apiErr != nil {
		return apiErr
	}
	// The upload has a deadline of its own; the answer may stream for as
	// long as the upstream call lasts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.opts.MaxBodyBytes))
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		if _, over := errors.AsType[*http.MaxBytesError](err); over {
			return tooLarge(g.opts.MaxBodyBytes)
		}
		return invalid("", "Could not read the request body.")
	}
	in, apiErr := parseInference(body, ep.embeddings)
	if apiErr != nil {
		return apiErr
	}
	x.model, x.stream = in.Model, in.Stream
	provider, ok := cfg.ModelProvider(in.Model)
	if !ok {
		e := newError(http.StatusNotFound, typeInvalidRequest, "model_not_found", "The model '"+in.Model+"' does not exist.")
		e.Param = ptr("model")
		return e
	}
	plan, ok := cfg.TenantPlan(t.GetId())
	if !ok {
		return errBadKey // the tenant or its plan went meanwhile
	}
	if !modelAllowed(t, plan, in.Model) {
		e := newError(http.StatusForbidden, typePermission, "model_not_allowed", "This tenant may not use the model '"+in.Model+"'.")
		e.Param = ptr("model")
		return e
	}
	x.provider = provider
	upBody, err := upstreamBody(body, in)
	if err != nil {
		return errBadJSON
	}

	est, res, apiErr := x.reserve(in, plan, ep)
	if apiErr != nil {
		return apiErr
	}
	x.owner, x.degraded = res.Owner, res.Degraded
	setRateLimitHeaders(w.Header(), res)
	if !res.Allowed {
		return denial(w.Header(), res)
	}
	x.res = res
	return x.proxy(w, r, ep, in, est, upBody)
}

// reserve takes the request's reservation: one request and its estimated
// tokens, the prompt's plus the most the answer may take, capped at what
// the plan allows a minute (a larger estimate could never be admitted).
func (x *exchange) reserve(in *inference, plan *configv1.Plan, ep endpoint) (estimate, *Reservation, *apiError) {
	est := estimate{prompt: in.promptTokens()}
	if !ep.embeddings {
		dflt := plan.GetDefaultMaxTokens()
		if dflt == 0 {
			dflt = x.g.opts.DefaultMaxTokens
		}
		est.completion = in.completionTokens(dflt)
	}
	tokens := est.prompt + est.completion
	if tpm := plan.GetTokensPerMinute(); tpm > 0 {
		tokens = min(tokens, tpm)
	}
	res, err := x.g.opts.Reserver.Reserve(x.ctx, x.tenant, tokens, x.g.leaseTTL)
	switch {
	case errors.Is(err, quota.ErrTenantSuspended):
		return est, nil, errSuspended
	case errors.Is(err, quota.ErrUnknownTenant):
		return est, nil, errBadKey
	case errors.Is(err, quota.ErrOverloaded):
		return est, nil, errOverloaded
	case err != nil:
		x.g.log.Warn("reservation failed", "tenant", x.tenant, "err", err)
		return est, nil, errNotReady
	}
	return est, res, nil
}

// fail answers with an error. Nothing reached the upstream, so an
// admitted reservation is refunded whole.
func (x *exchange) fail(w http.ResponseWriter, e *apiError) {
	x.status, x.errCode = e.status, codeOf(e)
	writeError(w, e)
	x.settle(quota.Usage{Failed: true})
}

// settle settles the reservation, once.
func (x *exchange) settle(u quota.Usage) {
	if x.res == nil {
		return
	}
	x.priced(&u)
	x.g.opts.Reserver.Settle(x.res, u)
	x.res, x.usage = nil, u
}

// progress notes what the request has used so far, until it is settled.
func (x *exchange) progress(u quota.Usage) {
	if x.res != nil {
		x.priced(&u)
		x.g.opts.Reserver.Progress(x.res, u)
	}
}

// priced names u's model and prices it.
func (x *exchange) priced(u *quota.Usage) {
	u.Model = x.model
	if !u.Failed && x.provider != nil {
		u.CostMicros = cost(x.provider, u.PromptTokens, u.CompletionTokens)
	}
}

// finish settles what is still open (a panic on the way: the request is
// refunded) and writes the audit line. It never logs the key.
func (x *exchange) finish() {
	x.settle(quota.Usage{Failed: true})
	took := time.Since(x.start)
	x.g.metrics.observe(x.endpoint, x.status, took, x.usage)
	level := slog.LevelInfo
	if x.status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("request_id", x.id),
		slog.String("tenant", x.tenant),
		slog.String("model", x.model),
		slog.String("endpoint", x.endpoint),
		slog.Bool("stream", x.stream),
		slog.Int("status", x.status),
		slog.Int64("prompt_tokens", x.usage.PromptTokens),
		slog.Int64("completion_tokens", x.usage.CompletionTokens),
		slog.Int64("cost_micros", x.usage.CostMicros),
		slog.Duration("latency", took),
		slog.String("node", x.g.opts.Node),
		slog.String("owner", x.owner),
		slog.Bool("degraded", x.degraded),
	}
	if x.errCode != "" {
		attrs = append(attrs, slog.String("error", x.errCode))
	}
	x.g.audit.LogAttrs(x.ctx, level, "request", attrs...)
}

func ptr[T any](v T) *T { return &v }
