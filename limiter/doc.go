// Package limiter owns Tollgate's rate-limit algorithms and the sharded
// in-memory store that holds one node's authoritative counters (and, in a
// second store, the copies it keeps for other owners).
//
// A store can note the tenants whose state changed (Changes) and take a
// copy whole (Replace), for replication; it does not send anything.
//
// It decides: token bucket (the default), sliding window, fixed window,
// concurrency leases and calendar-month quotas, each exact in integer
// arithmetic, and reserves several limits of one tenant atomically (all
// consume or none) with a later adjustment to settle the real amount.
//
// It does not know about the network, Raft, tenants' plans or who owns a
// tenant: callers hand it fully described limits. Time comes from an
// injected Clock so tests can advance it by hand.
package limiter
