// Package quota is the vocabulary that the cluster, the APIs and the
// gateway share: what a check asks and what it is answered (CheckRequest,
// CheckResponse, LimitStatus), how a non-owner decides when the owner is
// out of reach (FailurePolicy), how bad input is reported (FieldError,
// ErrInvalidArgument), the names of a plan's limits, the tenant errors, and
// the usage a gateway request reports.
//
// It holds types and their validation only: it decides nothing (package
// limiter and the cluster do), stores nothing and speaks no protocol. It
// imports nothing of ours but limiter, so every package above can use it
// and none needs another's copy of these words.
package quota
