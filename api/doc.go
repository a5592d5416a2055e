// Package api serves a node's public surfaces, each a thin adapter over an
// interface it declares (node.go): the HTTP JSON check API and the
// cluster view (Node), the gRPC tollgate.v1.RateLimiter service
// (Checker), and the admin API over HTTP under /admin/v1/ and gRPC
// tollgate.config.v1.Admin (Admin), with health, readiness and /metrics.
// It also owns the node's listeners and servers, and the ordered list of
// parts a node starts and stops by (server.go, parts.go).
//
// Handlers decode, call the interface and encode: they never reach into
// Raft, the ring or the store. It does not decide anything (package
// cluster) and does not serve the OpenAI-compatible gateway (package
// proxy); package api/admin holds the admin API's wire types and client.
package api
