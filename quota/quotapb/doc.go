// Package quotapb converts between quota's types and the messages of the
// public gRPC API (tollgate.v1), which the peer service reuses for limits,
// and turns the cluster's errors into gRPC status codes.
//
// It holds conversions only. It is apart from quota so that what imports
// quota (the gateway) does not import gRPC.
package quotapb
