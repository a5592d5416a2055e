// Package cluster owns a Tollgate node: the Node that answers checks, and
// the APIs that reach it (HTTP JSON on the API address, gRPC
// tollgate.v1.RateLimiter and tollgate.config.v1.Admin), its health,
// readiness and Prometheus metrics.
//
// Its planes, a file or two each: membership (membership.go, gossip), the
// ring of tenant owners (ring.go), forwarding to owners (forward.go,
// stream.go, peerserver.go), hand-off of tenant state (handoff.go), failure
// policies (failure.go), and the Raft-replicated configuration: Raft set-up
// (raft.go), its membership (raftmembers.go), the FSM (fsm.go) and its
// immutable views (configview.go), writes through the leader (apply.go),
// the admin operations (admin.go, adminhttp.go, admingrpc.go), plan checks
// (plans.go, plancheck.go) and the usage flusher (usage.go); and, for the
// gateway, reservations on a tenant's owner (reserve.go) and their
// settlement there, queued, batched and resent until applied once
// (settle.go).
//
// It does not implement algorithms (package limiter) or the
// OpenAI-compatible gateway (package proxy), and it does not read flags or
// files: cmd/tollgate builds its Config.
package cluster
