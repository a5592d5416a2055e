package bench

import "time"

// Report is everything one run measured. The JSON report is this struct;
// the table and the HTML page are drawn from it. Latencies are in
// milliseconds, measured from each request's scheduled start.
type Report struct {
	Scenario     string    `json:"scenario"`
	Targets      []string  `json:"targets"`
	Mode         string    `json:"mode"`        // "open" (a schedule) or "closed" (workers)
	TargetRate   float64   `json:"target_rate"` // requests a second; 0 in a closed loop
	Workers      int       `json:"workers,omitempty"`
	Started      time.Time `json:"started"`
	Duration     float64   `json:"duration_seconds"`
	Requests     int64     `json:"requests"`
	AchievedRate float64   `json:"achieved_rate"`
	Allowed      int64     `json:"allowed"`
	Denied       int64     `json:"denied"`
	Errors       int64     `json:"errors"`
	// ErrorsByKind counts errors by a short kind: "timeout", "refused",
	// "http_503", "grpc_unavailable", ...
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	ErrorRate    float64          `json:"error_rate"` // errors ÷ requests
	Latency      Latency          `json:"latency"`
	// Timeline has one entry a second of the run.
	Timeline []Second `json:"timeline"`
	// Distribution is latency by percentile, for the distribution chart.
	Distribution []Percentile `json:"distribution"`
	Accuracy     Accuracy     `json:"accuracy"`
	// Replication is what a spawned cluster's nodes report of copying
	// tenant state; nil without --spawn or with replication off.
	Replication *Replication `json:"replication,omitempty"`
	// Cost is what a spawned cluster's nodes spent per request (nil
	// without --spawn, or with chaos, whose restarts reset the counters).
	Cost *NodeCost `json:"node_cost,omitempty"`
	// Events are the chaos events of the run, in order.
	Events []Event     `json:"events,omitempty"`
	SLOs   []SLOResult `json:"slos,omitempty"`
	Passed bool        `json:"passed"` // every SLO met (true without SLOs)
	// Interrupted says the run was stopped before its time (Ctrl-C): its
	// figures cover only part of it.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Second is one second of the run: what completed in it.
type Second struct {
	T        int     `json:"t"` // seconds since the start
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Denied   int64   `json:"denied"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
}

// Percentile is one point of the latency distribution.
type Percentile struct {
	Percentile float64 `json:"percentile"` // 0 to 100
	Latency    float64 `json:"latency_ms"`
}

// Accuracy compares, for each tenant, what was admitted with what its
// limits allow over the run.
type Accuracy struct {
	Tenants []TenantAccuracy `json:"tenants"`
	// WorstOvershoot is the largest overshoot in percent (0 when no
	// tenant was admitted more than its limits allow).
	WorstOvershoot float64 `json:"worst_overshoot_pct"`
	WorstTenant    string  `json:"worst_tenant,omitempty"`
}

// TenantAccuracy is one tenant's admitted hits against its allowance.
type TenantAccuracy struct {
	Tenant    string  `json:"tenant"`
	Admitted  int64   `json:"admitted"`
	Allowed   int64   `json:"allowed"`       // what the limits allow over the run
	Overshoot float64 `json:"overshoot_pct"` // (admitted − allowed) ÷ allowed × 100, at least 0
}

// Event is a chaos event and what came of it.
type Event struct {
	At     float64 `json:"at_seconds"` // since the start
	Kind   string  `json:"kind"`       // kill, restart, join, leave
	Node   string  `json:"node"`
	Detail string  `json:"detail,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// SLOResult is one gate: its target, what was measured, and whether it
// held.
type SLOResult struct {
	Name   string  `json:"name"` // p50, p90, p99, p999, max, error-rate, overshoot
	Target float64 `json:"target"`
	Actual float64 `json:"actual"`
	Unit   string  `json:"unit"` // "ms" or "%"
	Passed bool    `json:"passed"`
}
