package cluster

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/limiter"
)

// Config is what a Node needs; cmd/tollgate fills it from flags, env and file.
type Config struct {
	NodeName string
	// MaxEntries and IdleTTL bound the limit store (see limiter.Options).
	MaxEntries int
	IdleTTL    time.Duration
	// SweepInterval is how often idle entries are looked for; 30s if zero.
	SweepInterval time.Duration
	Clock         limiter.Clock
	Logger        *slog.Logger
}

// Node answers checks. Today it decides every tenant itself; with the
// cluster it will decide for the tenants it owns and ask the owner for the
// rest.
type Node struct {
	name    string
	store   *limiter.Store
	metrics *metrics
	log     *slog.Logger
	sweep   time.Duration

	ready atomic.Bool
	wg    sync.WaitGroup
}

// NewNode creates a node with its own Prometheus registry.
func NewNode(cfg Config) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	store := limiter.NewStore(limiter.Options{Clock: cfg.Clock, MaxEntries: cfg.MaxEntries, IdleTTL: cfg.IdleTTL})
	return &Node{
		name:    cfg.NodeName,
		store:   store,
		metrics: newMetrics(store),
		log:     cfg.Logger.With("component", "node"),
		sweep:   cfg.SweepInterval,
	}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Registry returns the node's Prometheus registry.
func (n *Node) Registry() *prometheus.Registry { return n.metrics.registry }

// Start runs the node's background work until ctx ends; Wait waits for it.
func (n *Node) Start(ctx context.Context) {
	n.wg.Go(func() {
		t := time.NewTicker(n.sweep)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if removed := n.store.Sweep(); removed > 0 {
					n.log.Debug("swept idle tenants", "removed", removed)
				}
			}
		}
	})
}

// Wait blocks until the goroutines started by Start have returned.
func (n *Node) Wait() { n.wg.Wait() }

// SetReady marks the node ready (or not) for /readyz.
func (n *Node) SetReady(ready bool) { n.ready.Store(ready) }

// Ready reports whether the node takes traffic.
func (n *Node) Ready() bool { return n.ready.Load() }

// Check decides a request. Invalid requests return an error wrapping
// ErrInvalidArgument and change nothing.
func (n *Node) Check(_ context.Context, req *CheckRequest) (*CheckResponse, error) {
	if err := req.Validate(""); err != nil {
		return nil, err
	}
	return n.check(req), nil
}

// CheckBatch decides several independent requests. The whole batch is
// validated first, so an invalid one changes nothing.
func (n *Node) CheckBatch(_ context.Context, reqs []CheckRequest) ([]*CheckResponse, error) {
	if len(reqs) > MaxChecksPerBatch {
		return nil, fieldErr("requests", "at most %d checks per batch, got %d", MaxChecksPerBatch, len(reqs))
	}
	for i := range reqs {
		if err := reqs[i].Validate(indexPrefix("requests", i)); err != nil {
			return nil, err
		}
	}
	out := make([]*CheckResponse, len(reqs))
	for i := range reqs {
		out[i] = n.check(&reqs[i])
	}
	return out, nil
}

func (n *Node) check(req *CheckRequest) *CheckResponse {
	start := time.Now()
	reqs := make([]limiter.Request, len(req.Limits))
	for i, l := range req.Limits {
		reqs[i] = limiter.Request{Limit: l, Hits: req.Hits}
	}
	results := make([]limiter.Result, len(reqs))
	allowed, err := n.store.Reserve(req.Tenant, reqs, results)
	if err != nil {
		// Validate has already accepted the request, so the store cannot
		// refuse it; if it ever does, deny rather than admit.
		n.log.Error("store refused a validated check", "tenant", req.Tenant, "err", err)
	}
	resp := &CheckResponse{Allowed: allowed, Owner: n.name, Limits: make([]LimitStatus, len(results))}
	for i, r := range results {
		resp.Limits[i] = LimitStatus{Name: req.Limits[i].Name, Result: r}
	}
	n.metrics.observeCheck(allowed, time.Since(start))
	return resp
}

// Release ends a concurrency lease early. Releasing an unknown or expired
// lease is not an error.
func (n *Node) Release(_ context.Context, req *ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if req.Limit.Algorithm != limiter.Concurrency {
		return fieldErr("limit.algorithm", "only concurrency limits hold leases, got %s", req.Limit.Algorithm)
	}
	return n.store.Adjust(req.Tenant, []limiter.Adjustment{{Limit: req.Limit, Lease: req.Lease}})
}

func indexPrefix(name string, i int) string {
	return name + "[" + strconv.Itoa(i) + "]."
}
