// Package gossip runs a node's membership over hashicorp/memberlist: who
// is alive, each member's addresses and readiness in its node metadata,
// and a graceful leave told apart from a death. Events are consumed in one
// goroutine (Membership.Run), which calls back after each burst.
//
// It owns the member table and memberlist's tuning. It does not decide who
// owns a tenant (package ring), dial peers (package peer) or change the Raft
// configuration (the cluster's Node follows gossip for that).
package gossip
