// Package cluster owns a Tollgate node: the Node that answers checks for
// any tenant, deciding for the tenants it owns and forwarding the rest.
//
// A check's path: route.go (owner here, or forward through package peer,
// or the failure policy of failure.go when the owner cannot answer), then
// decide.go on the owner (plan limits, the monthly budget against the
// ledger, the store's reservation). Around it: the node's lifetime and
// its ring of owners (node.go), hand-off of tenant state when ownership
// moves (handoff.go), copies of the owned tenants' state on their
// successors, taken over when an owner dies (replicate.go), gateway
// reservations and their settlement, queued and resent until applied once
// (reserve.go, settle.go) and kept on disk until then (journal.go), usage
// flushed to Raft (usage.go), Raft set-up (raft.go), writes through the leader
// (apply.go), Raft's voters following gossip (raftmembers.go), the admin
// operations (admin.go), what other nodes may ask of this one
// (peerlocal.go), and metrics (metrics.go).
//
// Its parts live in subpackages: ring (the consistent hash), gossip
// (memberlist), peer (the node-to-node gRPC plane) and config (the Raft
// FSM and its views). It does not implement algorithms (package limiter),
// serve the public APIs (package api) or the OpenAI-compatible gateway
// (package proxy), and it does not read flags or files: cmd/tollgate
// builds its Config.
package cluster
