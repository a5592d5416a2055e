package quota

import (
	"errors"
	"fmt"
	"strconv"
	"time"

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

// Invalid returns a FieldError for field with a formatted reason.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// FailurePolicy says how a node decides a check when the tenant's owner
// cannot be reached in time.
type FailurePolicy uint8

const (
	// PolicyLocal decides on this node against a local bucket holding the
	// limit divided by the number of live nodes. The default.
	PolicyLocal FailurePolicy = iota
	// PolicyOpen admits.
	PolicyOpen
	// PolicyClosed denies.
	PolicyClosed
)

var policyNames = [...]string{PolicyLocal: "local", PolicyOpen: "open", PolicyClosed: "closed"}

func (p FailurePolicy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", p)
}

// ParseFailurePolicy maps "local", "open" or "closed" ("" is local).
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	if s == "" {
		return PolicyLocal, nil
	}
	for p, name := range policyNames {
		if name == s {
			return FailurePolicy(p), nil
		}
	}
	return 0, fmt.Errorf("unknown failure policy %q (want local, open or closed)", s)
}

// CheckRequest asks to consume Hits from every limit of one tenant at once.
// A plan check (Plan set, no Limits given) takes its limits and failure
// policy from the tenant's plan; Hits counts requests and Tokens is charged
// to the token limits.
type CheckRequest struct {
	Tenant        string
	Limits        []limiter.Limit
	Hits          int64
	FailurePolicy FailurePolicy
	Plan          bool
	Tokens        int64
	// Reserve makes a plan check a gateway reservation: it also takes a
	// lease on the plan's concurrent requests, valid for LeaseTTL, and its
	// usage is recorded when it is settled.
	Reserve  bool
	LeaseTTL time.Duration
}

// NewCheckRequest returns a request with n zero limits. For the usual few
// the request and its limits are one allocation, not two: a node makes
// one for every check it serves.
func NewCheckRequest(n int) *CheckRequest {
	req, limits := withItems[CheckRequest, limiter.Limit](n)
	req.Limits = limits
	return req
}

// NewCheckResponse returns a response with n zero limit statuses, in one
// allocation for the usual few (see NewCheckRequest).
func NewCheckResponse(n int) *CheckResponse {
	resp, limits := withItems[CheckResponse, LimitStatus](n)
	resp.Limits = limits
	return resp
}

// withItems allocates a T and n items together when n is small: one limit
// (a client's own), or up to four (a plan's requests and tokens per
// minute, month's tokens and concurrent requests).
func withItems[T, E any](n int) (*T, []E) {
	switch {
	case n == 0:
		return new(T), nil
	case n == 1:
		b := new(struct {
			v     T
			items [1]E
		})
		return &b.v, b.items[:]
	case n <= 4:
		b := new(struct {
			v     T
			items [4]E
		})
		return &b.v, b.items[:n:n]
	}
	return new(T), make([]E, n)
}

// HitsFor returns what the i-th limit consumes.
func (r *CheckRequest) HitsFor(i int) int64 {
	if r.Plan && (r.Limits[i].Name == LimitTokensPerMinute || r.Limits[i].Name == LimitTokensPerMonth) {
		return r.Tokens
	}
	return r.Hits
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
	// Degraded says the owner could not be reached and the failure policy
	// decided.
	Degraded bool
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
	if err := ValidateTenant(prefix, r.Tenant); err != nil {
		return err
	}
	if r.Hits < 0 {
		return Invalid(prefix+"hits", "must be >= 0, got %d", r.Hits)
	}
	if r.Tokens < 0 {
		return Invalid(prefix+"tokens", "must be >= 0, got %d", r.Tokens)
	}
	if r.Tokens > 0 && !r.Plan {
		return Invalid(prefix+"tokens", "only for checks against the tenant's plan (no limits)")
	}
	if r.Reserve && !r.Plan {
		return Invalid(prefix+"reserve", "only for checks against the tenant's plan")
	}
	switch n := len(r.Limits); {
	case n == 0 && r.Plan:
		return nil // the plan's limits are filled in later
	case n == 0:
		return Invalid(prefix+"limits", "at least one limit is required")
	case n > MaxLimitsPerCheck:
		return Invalid(prefix+"limits", "at most %d limits per check, got %d", MaxLimitsPerCheck, n)
	}
	for i := range r.Limits {
		// Field names are built only for an error: this runs on every check.
		l := &r.Limits[i]
		if err := ValidateLimit(l); err != nil {
			return err.Under(fmt.Sprintf("%slimits[%d]", prefix, i))
		}
		if !r.Plan {
			// A caller's own limits: never a plan's (whose buckets the
			// gateway's tenants live by), and never more hits than one
			// decision could admit (a denial that could never turn).
			if IsPlanLimit(l.Name) {
				return Invalid(fmt.Sprintf("%slimits[%d].name", prefix, i), "%q is reserved for the tenant's plan; name the limit otherwise", l.Name)
			}
			if c := l.Capacity(); r.Hits > c {
				return Invalid(prefix+"hits", "%d is more than limits[%d] can ever admit at once (%d)", r.Hits, i, c)
			}
		}
		for j := range i {
			if r.Limits[j].Name == r.Limits[i].Name {
				return Invalid(fmt.Sprintf("%slimits[%d].name", prefix, i), "%q is used by limits[%d] too", r.Limits[i].Name, j)
			}
		}
	}
	return nil
}

// Validate checks a release request.
func (r *ReleaseRequest) Validate() error {
	if err := ValidateTenant("", r.Tenant); err != nil {
		return err
	}
	if r.Lease == 0 {
		return Invalid("lease_id", "is required")
	}
	if err := ValidateLimit(&r.Limit); err != nil {
		return err.Under("limit")
	}
	return nil
}

// ValidateTenant checks a tenant name (see CheckText); prefix is
// prepended to the field.
func ValidateTenant(prefix, tenant string) error {
	if err := CheckText("tenant", tenant, MaxTenantLen); err != nil {
		err.Field = prefix + err.Field // built only for an error: this runs on every check
		return err
	}
	return nil
}

// ValidateLimit adds our bounds to limiter's and names the field within
// the limit.
func ValidateLimit(l *limiter.Limit) *FieldError {
	if l.Name != "" { // limiter names the missing name
		if err := CheckText("name", l.Name, MaxNameLen); err != nil {
			return err
		}
	}
	err := l.Validate()
	if err == nil {
		return nil // before errors.As, whose target would escape on every check
	}
	var le *limiter.LimitError
	if errors.As(err, &le) {
		return Invalid(le.Field, "%s", le.Reason)
	}
	return Invalid("", "%v", err)
}

// Under prefixes the field name with the path of its container.
func (e *FieldError) Under(path string) *FieldError {
	if e.Field == "" {
		e.Field = path
	} else {
		e.Field = path + "." + e.Field
	}
	return e
}

// IndexPrefix is the field prefix of the i-th element of a list, as in
// "requests[3].".
func IndexPrefix(name string, i int) string {
	return name + "[" + strconv.Itoa(i) + "]."
}
