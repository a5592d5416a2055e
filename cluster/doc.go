// Package cluster owns a Tollgate node: the Node that answers checks, and
// the public APIs that reach it (HTTP JSON on the API address, gRPC
// tollgate.v1.RateLimiter), its health, readiness and Prometheus metrics.
//
// Membership (gossip), the ring of tenant owners, forwarding to owners,
// hand-off and the Raft-replicated configuration belong here too as they
// arrive; today a node decides every check itself.
//
// It does not implement algorithms (package limiter) or the
// OpenAI-compatible gateway (package proxy), and it does not read flags or
// files: cmd/tollgate builds its Config.
package cluster
