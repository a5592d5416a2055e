package quota

import "errors"

// Errors a node answers with when it cannot serve a request now; the APIs
// make them 503 / Unavailable.
var (
	// ErrNotReady means the node is not (or no longer) part of the cluster:
	// joining, or the last node leaving.
	ErrNotReady = errors.New("node not ready: not (or no longer) in the cluster")
	// ErrOwnerUnavailable means a request that only the tenant's owner can
	// serve could not reach it.
	ErrOwnerUnavailable = errors.New("owner unavailable")
	// ErrNoQuorum means a configuration write could not be committed: there
	// is no Raft leader, or the leader cannot reach a majority. Reads, key
	// checks and enforcement go on from the last configuration meanwhile.
	ErrNoQuorum = errors.New("no quorum: configuration writes need a majority of nodes")
	// ErrNoRaft means the node was started without Raft (no raft address),
	// so it has no replicated configuration to write to.
	ErrNoRaft = errors.New("this node runs without raft: no replicated configuration")
	// ErrOverloaded means the node holds as much as it may of a bounded
	// resource (gateway settlements not yet applied, concurrency leases),
	// and takes no new request that needs more until some is freed.
	ErrOverloaded = errors.New("overloaded")
)
