// Package bench is Tollgate's load generator: `tollgate bench` loads a
// cluster (or starts one) with checks over gRPC or HTTP, or with chat
// completions through the gateway, on an open-loop schedule by default, so
// that latency counts from when each request was due and a slow server
// cannot hide its queue (no coordinated omission). It records latency in
// HDR histograms, prints progress every second, checks SLO gates, and
// writes the run as a table, a JSON file and a self-contained HTML page.
//
// It owns the schedule, the scenarios, the statistics, the accuracy of the
// limits (admitted against allowed, per tenant), the local clusters it
// spawns and the chaos it schedules on them. It does not own the servers
// it measures: it reaches them only through their public APIs and, when it
// spawns them, as `tollgate serve` processes.
package bench
