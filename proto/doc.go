// Package proto holds Tollgate's protobuf sources and the Go generated from
// them, which is committed. Regenerate with `make proto`; TestGeneratedIsCurrent
// fails when the committed code no longer matches the sources.
//
// tollgate/v1 is the public gRPC API (tollgate.v1.RateLimiter). It owns wire
// types only; no logic lives here.
package proto
