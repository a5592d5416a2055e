// Package config is Tollgate's replicated configuration: the Raft FSM that
// every node applies committed commands to (plans, tenants, hashed API
// keys, providers, Envoy rate limit domains and the usage ledger), its
// immutable View that readers load without a lock (with the matching of
// Envoy descriptors against a domain's rules), snapshot and restore, the
// default plans and a
// tenant's effective plan, and the validation of what a command carries.
//
// It never touches the network: no gRPC, no HTTP. Writing a command
// through the Raft leader, and following gossip with Raft's voters, are
// the cluster's job; the views are read by the cluster and, through an
// interface of its own, by the gateway.
package config
