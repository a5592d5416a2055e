package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Gateway; zero values take the defaults below.
type Options struct {
	// Config returns the current configuration; Reserver takes and
	// settles reservations. Both are required.
	Config   func() Config
	Reserver Reserver
	// Node names this node in the audit log.
	Node string
	// Logger gets the audit log, one line per request.
	Logger *slog.Logger
	// ConnectTimeout bounds connecting to an upstream (10s), HeaderTimeout
	// waiting for its answer's headers (60s), Timeout the whole call,
	// stream included (10m).
	ConnectTimeout, HeaderTimeout, Timeout time.Duration
	// DefaultMaxTokens is the completion estimate of a request that names
	// no max_tokens, when its plan names none either (1024).
	DefaultMaxTokens int64
	// MaxBodyBytes bounds request bodies (10 MiB).
	MaxBodyBytes int64
	// Transport calls the upstreams; nil builds one from the timeouts.
	Transport http.RoundTripper
	// Getenv reads providers' API keys; os.Getenv if nil.
	Getenv func(string) string
	// KeyEnvPrefix is the prefix a provider's api_key_env must have for
	// the gateway to read it (DefaultKeyEnvPrefix if empty): a provider
	// written into the configuration cannot have any other variable of
	// the node's environment sent to its URL.
	KeyEnvPrefix string
	// AllowPrivateUpstreams lets upstreams resolve to link-local addresses
	// (cloud metadata services among them), refused otherwise.
	AllowPrivateUpstreams bool
	// Registerer takes the gateway's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Defaults of Options.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultHeaderTimeout  = 60 * time.Second
	DefaultTimeout        = 10 * time.Minute
	DefaultMaxTokens      = 1024
	DefaultMaxBodyBytes   = 10 << 20
	DefaultKeyEnvPrefix   = "TOLLGATE_PROVIDER_"
)

const (
	leaseMargin             = time.Minute
	bodyReadTimeout         = 2 * time.Minute
	headerRequestID         = "X-Request-Id"
	headerAPIKey            = "X-Api-Key"
	contentTypeEventStream  = "text/event-stream"
	statusClientClosedEarly = 499 // as nginx logs it: the client went away
)

func (o *Options) setDefaults() error {
	if o.Config == nil || o.Reserver == nil {
		return errors.New("gateway: Config and Reserver are required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		dflt time.Duration
	}{
		{"upstream-connect-timeout", &o.ConnectTimeout, DefaultConnectTimeout},
		{"upstream-header-timeout", &o.HeaderTimeout, DefaultHeaderTimeout},
		{"upstream-timeout", &o.Timeout, DefaultTimeout},
	} {
		if *d.v < 0 {
			return fmt.Errorf("%s: must be > 0, got %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.dflt
		}
	}
	if o.DefaultMaxTokens < 0 {
		return fmt.Errorf("default-max-tokens: must be > 0, got %d", o.DefaultMaxTokens)
	}
	if o.DefaultMaxTokens == 0 {
		o.DefaultMaxTokens = DefaultMaxTokens
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.KeyEnvPrefix == "" {
		o.KeyEnvPrefix = DefaultKeyEnvPrefix
	}
	return nil
}

// Gateway is the OpenAI-compatible HTTP handler.
type Gateway struct {
	opts     Options
	client   *http.Client
	audit    *slog.Logger
	log      *slog.Logger
	leaseTTL time.Duration
	metrics  *metrics
	ids      atomic.Uint64
	// inflight counts requests being served, for Wait.
	inflight sync.WaitGroup
}

// New checks the options and builds a gateway.
func New(opts Options) (*Gateway, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if opts.Transport == nil {
		opts.Transport = newTransport(&opts)
	}
	return &Gateway{
		opts: opts,
		// Timeouts are per request (a context), so that a stream may
		// outlive the header timeout.
		client: &http.Client{
			Transport: opts.Transport,
			// A redirect is the upstream's answer, passed on as it is:
			// following it would send the provider's key elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		audit: opts.Logger.With("component", "audit"),
		log:   opts.Logger.With("component", "gateway"),
		// A lease outlives the longest upstream call, so it ends with its
		// request unless the node serving that request dies.
		leaseTTL: opts.Timeout + leaseMargin,
		metrics:  newMetrics(opts.Registerer),
	}, nil
}

// Wait waits for the requests being served to end, each settled. Call it
// once the server has stopped taking requests.
func (g *Gateway) Wait() { g.inflight.Wait() }

// Close releases idle upstream connections.
func (g *Gateway) Close() {
	if t, ok := g.opts.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// endpoint is one of the proxied APIs.
type endpoint struct {
	upstream   string // path after the provider's base URL
	embeddings bool
}

func (ep endpoint) serve(x *exchange, w http.ResponseWriter, r *http.Request) *apiError {
	return x.run(w, r, ep)
}

// route is one of the gateway's paths.
type route struct {
	method string
	label  string // the endpoint in metrics and the audit log
	serve  func(*exchange, http.ResponseWriter, *http.Request) *apiError
}

var routes = map[string]route{
	"/v1/chat/completions": {http.MethodPost, "/chat/completions", endpoint{upstream: "/chat/completions"}.serve},
	"/v1/completions":      {http.MethodPost, "/completions", endpoint{upstream: "/completions"}.serve},
	"/v1/embeddings":       {http.MethodPost, "/embeddings", endpoint{upstream: "/embeddings", embeddings: true}.serve},
	"/v1/models":           {http.MethodGet, "/v1/models", (*exchange).serveModels},
}

// ServeHTTP routes the gateway's endpoints; anything else gets OpenAI's
// error shape too.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.inflight.Add(1)
	g.metrics.inFlight.Inc()
	defer func() {
		g.metrics.inFlight.Dec()
		g.inflight.Done()
	}()
	id := r.Header.Get(headerRequestID)
	if id == "" || len(id) > 128 {
		id = g.opts.Node + "-" + strconv.FormatUint(g.ids.Add(1), 10)
	}
	w.Header().Set(headerRequestID, id)
	rt, ok := routes[r.URL.Path]
	if !ok {
		// Not the path: any client could make a metric series of its own.
		rt.label = "unknown"
	}
	x := &exchange{g: g, id: id, start: time.Now(), endpoint: rt.label, ctx: r.Context()}
	defer x.finish()
	switch {
	case r.Method == http.MethodOptions:
		x.status = g.preflight(w, r)
	case !ok:
		x.fail(w, errNotFound)
	case r.Method != rt.method:
		w.Header().Set("Allow", rt.method+", OPTIONS")
		x.fail(w, errBadMethod)
	default:
		if apiErr := rt.serve(x, w, r); apiErr != nil {
			x.fail(w, apiErr)
		}
	}
}
