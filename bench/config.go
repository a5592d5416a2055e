package bench

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Scenarios that --scenario names.
const (
	ScenarioCheckGRPC = "check-grpc"
	ScenarioCheckHTTP = "check-http"
	ScenarioGateway   = "gateway"
)

// Config is one run. cmd/tollgate fills it from flags.
type Config struct {
	Scenario string
	// Targets are the nodes' addresses for the scenario: gRPC addresses
	// for check-grpc, API addresses for check-http, gateway addresses for
	// gateway. Load is spread over them in turn.
	Targets []string
	// Tenants is how many tenants the load spreads over, by a Zipf
	// distribution of skew Zipf (0: uniform; else > 1, larger is more
	// skewed).
	Tenants int
	Zipf    float64
	// Limit and Period are each tenant's limit: a token bucket of Limit
	// per Period (burst Limit). For the gateway, Period is a minute (the
	// plan's requests per minute).
	Limit  int64
	Period time.Duration
	// Rate is the schedule in requests a second (open loop); Workers > 0
	// runs a closed loop of that many workers instead.
	Rate     float64
	Workers  int
	Duration time.Duration
	Hits     int64
	// Timeout bounds one request.
	Timeout time.Duration
	// StreamShare is the share of gateway requests that stream (0 to 1).
	StreamShare float64
	// Model is the model the gateway scenario asks for.
	Model string
	// AdminServer and AdminToken reach a node's admin API, where the
	// gateway scenario creates its tenants and keys.
	AdminServer, AdminToken string
	// CheckToken is the nodes' --check-token, sent by the check scenarios.
	CheckToken string
	// MaxInFlight bounds the requests under way in an open loop; a
	// request that waits for room still counts its latency from when it
	// was due.
	MaxInFlight int
	SLOs        []SLO
	// Spawn starts a local cluster of that many `tollgate serve`
	// processes (Binary) for the run, and Chaos schedules events on it.
	Spawn  int
	Binary string
	Chaos  []ChaosEvent
	// SpawnTLS runs the spawned cluster's peer plane and Raft over mutual
	// TLS, with certificates from `tollgate certs`.
	SpawnTLS bool
	// SpawnArgs are more flags for every spawned `tollgate serve` (say
	// --replicate=false, to compare).
	SpawnArgs []string
	// SpawnLogs, when set, is a directory where each spawned process's
	// output goes, whole, to <name>.log (appended to on a restart).
	SpawnLogs string
	// Progress gets one line a second while the run goes on.
	Progress io.Writer
}

// DefaultConfig is the run `tollgate bench` makes without flags.
func DefaultConfig() Config {
	c := Config{Zipf: 1.1, StreamShare: 0.5}
	c.Defaults()
	return c
}

// Defaults fills the zero fields (Zipf and StreamShare mean what they
// say at zero: uniform, none).
func (c *Config) Defaults() {
	if c.Scenario == "" {
		c.Scenario = ScenarioCheckGRPC
	}
	if c.Tenants == 0 {
		c.Tenants = 100
	}
	if c.Limit == 0 {
		c.Limit = 100
	}
	if c.Period == 0 {
		c.Period = time.Minute
	}
	switch {
	case c.Workers > 0:
		c.Rate = 0 // a closed loop has no schedule
	case c.Rate == 0:
		c.Rate = 1000
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Hits == 0 {
		c.Hits = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Model == "" {
		c.Model = "mock-chat"
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 2048
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate names the first bad field by its flag.
func (c *Config) Validate() error {
	switch {
	case c.Scenario != ScenarioCheckGRPC && c.Scenario != ScenarioCheckHTTP && c.Scenario != ScenarioGateway:
		return fmt.Errorf("scenario: %q is not check-grpc, check-http or gateway", c.Scenario)
	case len(c.Targets) == 0 && c.Spawn == 0:
		return errors.New("targets: give at least one node address, or --spawn N")
	case len(c.Targets) > 0 && c.Spawn > 0:
		return errors.New("targets: not with --spawn, which makes its own")
	case c.Spawn < 0 || c.Spawn > 16:
		return fmt.Errorf("spawn: must be between 0 and 16, got %d", c.Spawn)
	case len(c.Chaos) > 0 && c.Spawn == 0:
		return errors.New("chaos: only on a cluster started with --spawn")
	case len(c.SpawnArgs) > 0 && c.Spawn == 0:
		return errors.New("spawn-flags: only with --spawn")
	case c.Tenants < 1:
		return fmt.Errorf("tenants: must be >= 1, got %d", c.Tenants)
	case c.Zipf != 0 && c.Zipf <= 1:
		return fmt.Errorf("zipf: must be 0 (uniform) or > 1, got %v", c.Zipf)
	case c.Limit < 1:
		return fmt.Errorf("limit: must be >= 1, got %d", c.Limit)
	case c.Period <= 0:
		return fmt.Errorf("period: must be > 0, got %s", c.Period)
	case c.Scenario == ScenarioGateway && c.Period != time.Minute:
		return fmt.Errorf("period: the gateway's limit is requests per minute; want 1m, got %s", c.Period)
	case c.Rate < 0 || c.Rate > 1e6:
		return fmt.Errorf("rate: must be between 0 and 1000000, got %v", c.Rate)
	case c.Workers < 0 || c.Workers > 10_000:
		return fmt.Errorf("workers: must be between 0 and 10000, got %d", c.Workers)
	case c.Duration <= 0 || c.Duration > 24*time.Hour:
		return fmt.Errorf("duration: must be between 0 and 24h, got %s", c.Duration)
	case c.Hits < 1:
		return fmt.Errorf("hits: must be >= 1, got %d", c.Hits)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout: must be > 0, got %s", c.Timeout)
	case c.Scenario == ScenarioGateway && c.Hits != 1:
		return fmt.Errorf("hits: a gateway request is one request; want 1, got %d", c.Hits)
	case c.MaxInFlight < 1:
		return fmt.Errorf("max-inflight: must be >= 1, got %d", c.MaxInFlight)
	case c.StreamShare < 0 || c.StreamShare > 1:
		return fmt.Errorf("stream-share: must be between 0 and 1, got %v", c.StreamShare)
	case c.Scenario == ScenarioGateway && c.Spawn == 0 && c.AdminServer == "":
		return errors.New("admin-server: the gateway scenario creates its tenants through a node's admin API")
	}
	for _, e := range c.Chaos {
		if e.At >= c.Duration {
			return fmt.Errorf("chaos: %s@%s is not within the run's %s", e.Kind, e.At, c.Duration)
		}
	}
	return nil
}

// SLO is a gate on the run: a latency percentile, the error rate or the
// worst overshoot must not exceed Target.
type SLO struct {
	Name   string // p50, p90, p99, p999, max, error-rate, overshoot
	Target float64
	Unit   string // "ms" or "%"
}

// ParseSLO reads "p99=2ms", "error-rate=0.1%" or "overshoot=0%".
func ParseSLO(s string) (SLO, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return SLO{}, fmt.Errorf("slo %q: want NAME=VALUE, such as p99=2ms", s)
	}
	switch name {
	case "p50", "p90", "p99", "p999", "p99.9", "max":
		if name == "p99.9" {
			name = "p999"
		}
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return SLO{}, fmt.Errorf("slo %q: %q is not a duration such as 2ms", s, value)
		}
		return SLO{Name: name, Target: float64(d) / float64(time.Millisecond), Unit: "ms"}, nil
	case "error-rate", "overshoot":
		pct, ok := strings.CutSuffix(value, "%")
		v, err := strconv.ParseFloat(pct, 64)
		if !ok || err != nil || v < 0 {
			return SLO{}, fmt.Errorf("slo %q: %q is not a percentage such as 0.1%%", s, value)
		}
		return SLO{Name: name, Target: v, Unit: "%"}, nil
	}
	return SLO{}, fmt.Errorf("slo %q: unknown name %q (want p50, p90, p99, p999, max, error-rate or overshoot)", s, name)
}

// ChaosEvent is one scheduled event on a spawned cluster.
type ChaosEvent struct {
	Kind string // kill, restart, join, leave
	At   time.Duration
	// Node names the node; empty picks one: the last started for kill
	// and leave, the last killed for restart.
	Node string
}

// ParseChaos reads "kill@10s", "restart@20s", "join@15s", "leave@25s",
// optionally with ":node-2" after the time.
func ParseChaos(s string) ([]ChaosEvent, error) {
	var out []ChaosEvent
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, rest, ok := strings.Cut(part, "@")
		at, node, _ := strings.Cut(rest, ":")
		d, err := time.ParseDuration(at)
		switch {
		case !ok || err != nil || d < 0:
			return nil, fmt.Errorf("chaos %q: want KIND@TIME[:NODE], such as kill@10s", part)
		case kind != "kill" && kind != "restart" && kind != "join" && kind != "leave":
			return nil, fmt.Errorf("chaos %q: unknown event %q (want kill, restart, join or leave)", part, kind)
		}
		out = append(out, ChaosEvent{Kind: kind, At: d, Node: node})
	}
	return out, nil
}
