package cluster

import (
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/limiter"
)

// Bounds on one request, so that a single call cannot pin a node.
const (
	MaxLimitsPerCheck = 32
	MaxChecksPerBatch = 1000
	MaxTenantLen      = 256
	MaxNameLen        = 128
)

// ErrInvalidArgument marks a request whose content is wrong; the error's
// message names the field. Nothing is consumed for such a request.
var ErrInvalidArgument = errors.New("invalid argument")

// FieldError is an ErrInvalidArgument that names the offending field, e.g.
// "limits[0].period".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalidArgument) hold.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidArgument }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// CheckRequest asks to consume Hits from every limit of one tenant at once.
type CheckRequest struct {
	Tenant string
	Limits []limiter.Limit
	Hits   int64
}

// LimitStatus is the decision for one limit of a check.
type LimitStatus struct {
	Name string
	limiter.Result
}

// CheckResponse is the answer to a CheckRequest.
type CheckResponse struct {
	Allowed bool
	Limits  []LimitStatus
	// Owner names the node that decided.
	Owner string
}

// ReleaseRequest ends a concurrency lease.
type ReleaseRequest struct {
	Tenant string
	Limit  limiter.Limit
	Lease  uint64
}

// Validate checks every field and returns a *FieldError naming the first
// bad one. prefix is prepended to field names ("requests[3]." in a batch).
func (r *CheckRequest) Validate(prefix string) error {
	if err := validateTenant(prefix, r.Tenant); err != nil {
		return err
	}
	if r.Hits < 0 {
		return fieldErr(prefix+"hits", "must be >= 0, got %d", r.Hits)
	}
	switch n := len(r.Limits); {
	case n == 0:
		return fieldErr(prefix+"limits", "at least one limit is required")
	case n > MaxLimitsPerCheck:
		return fieldErr(prefix+"limits", "at most %d limits per check, got %d", MaxLimitsPerCheck, n)
	}
	for i := range r.Limits {
		field := fmt.Sprintf("%slimits[%d]", prefix, i)
		if err := validateLimit(field, &r.Limits[i]); err != nil {
			return err
		}
		for j := range i {
			if r.Limits[j].Name == r.Limits[i].Name {
				return fieldErr(field+".name", "%q is used by limits[%d] too", r.Limits[i].Name, j)
			}
		}
	}
	return nil
}

// Validate checks a release request.
func (r *ReleaseRequest) Validate() error {
	if err := validateTenant("", r.Tenant); err != nil {
		return err
	}
	if r.Lease == 0 {
		return fieldErr("lease_id", "is required")
	}
	return validateLimit("limit", &r.Limit)
}

func validateTenant(prefix, tenant string) error {
	switch {
	case tenant == "":
		return fieldErr(prefix+"tenant", "is required")
	case len(tenant) > MaxTenantLen:
		return fieldErr(prefix+"tenant", "at most %d bytes", MaxTenantLen)
	}
	return nil
}

// validateLimit adds our bounds to limiter's and names the field.
func validateLimit(field string, l *limiter.Limit) error {
	if len(l.Name) > MaxNameLen {
		return fieldErr(field+".name", "at most %d bytes", MaxNameLen)
	}
	var le *limiter.LimitError
	if err := l.Validate(); errors.As(err, &le) {
		return fieldErr(field+"."+le.Field, "%s", le.Reason)
	} else if err != nil {
		return fieldErr(field, "%v", err)
	}
	return nil
}
