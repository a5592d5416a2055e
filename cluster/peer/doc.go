// Package peer is a node's side of the node-to-node gRPC plane: the pool
// of connections to the other members (keyed by node name), the forwarder
// that batches checks to a tenant's owner on one stream per owner, the
// conversions of the peer messages, and the server that answers other
// nodes through the Local interface the node implements.
//
// It owns how a check travels and how long it may take, not what is
// decided: routing, hand-off, settlement and Raft are the cluster's, and
// reach it only through Local.
package peer
