package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// The HTTP JSON shapes of /v1/check and /v1/release. Durations are written
// as Go duration strings ("60s", "1m30s") or numbers of seconds on input,
// and as seconds (a number) on output.

type checkJSON struct {
	Tenant        string      `json:"tenant"`
	Hits          *int64      `json:"hits"`
	Requests      *int64      `json:"requests"` // hits, by the name plan checks use
	Tokens        int64       `json:"tokens"`
	Limits        []limitJSON `json:"limits"`
	FailurePolicy string      `json:"failure_policy"`

	// hits and requests as the fast decoder reads them (see checkfast.go),
	// without allocating what Hits and Requests point to.
	hits, requests optInt
}

// optInt is an integer a request may leave out.
type optInt struct {
	v   int64
	set bool
}

// or is o, or *p if p is not nil.
func (o optInt) or(p *int64) optInt {
	if p != nil {
		return optInt{*p, true}
	}
	return o
}

type limitJSON struct {
	Name      string       `json:"name"`
	Algorithm string       `json:"algorithm"`
	Limit     int64        `json:"limit"`
	Period    jsonDuration `json:"period"`
	Burst     int64        `json:"burst"`
}

type releaseJSON struct {
	Tenant  string    `json:"tenant"`
	Limit   limitJSON `json:"limit"`
	LeaseID uint64    `json:"lease_id,string"`
}

// jsonDuration accepts "60s" or 60 (seconds).
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return quota.Invalid("period", "not a duration: %q (want e.g. \"60s\" or \"1m\")", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return quota.Invalid("period", "want a duration string such as \"60s\" or a number of seconds")
	}
	if math.Abs(secs) > limiter.MaxPeriod.Seconds() {
		return quota.Invalid("period", "must be at most %s, got %g seconds", limiter.MaxPeriod, secs)
	}
	*d = jsonDuration(time.Duration(secs * float64(time.Second)))
	return nil
}

// decodeJSON reads exactly one JSON value into v, rejecting unknown fields,
// and turns decoder errors into messages a client can act on.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case errors.As(err, new(*http.MaxBytesError)):
		return err
	}
	return quota.Invalid("body", "unexpected data after the JSON object")
}

// errSlowBody answers a request whose body did not arrive within the
// server's read timeout.
var errSlowBody = errors.New("the request body did not arrive in time")

func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	var field *quota.FieldError
	switch {
	case errors.As(err, &tooBig), errors.As(err, &field):
		return err
	case os.IsTimeout(err):
		return errSlowBody
	case errors.As(err, &syntax):
		return quota.Invalid("body", "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return quota.Invalid(field, "want %s, got JSON %s", quota.KindName(typ.Type.Kind()), typ.Value)
	case errors.Is(err, io.EOF):
		return quota.Invalid("body", "empty body; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return quota.Invalid("body", "malformed JSON: unexpected end")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return quota.Invalid(name, "unknown field")
	}
	return quota.Invalid("body", "%v", err)
}

// request turns a decoded /v1/check body into a validated request.
func (in *checkJSON) request() (*quota.CheckRequest, error) {
	req := quota.NewCheckRequest(len(in.Limits))
	req.Tenant, req.Hits, req.Tokens, req.Plan = in.Tenant, 1, in.Tokens, len(in.Limits) == 0
	switch hits, requests := in.hits.or(in.Hits), in.requests.or(in.Requests); {
	case hits.set && requests.set:
		return nil, quota.Invalid("requests", "give hits or requests, not both")
	case hits.set:
		req.Hits = hits.v
	case requests.set:
		req.Hits = requests.v
	}
	policy, err := quota.ParseFailurePolicy(in.FailurePolicy)
	if err != nil {
		return nil, quota.Invalid("failure_policy", "%v", err)
	}
	req.FailurePolicy = policy
	for i := range in.Limits {
		l, err := in.Limits[i].limit()
		if err != nil {
			return nil, err.Under(fmt.Sprintf("limits[%d]", i))
		}
		req.Limits[i] = l
	}
	if err := req.Validate(""); err != nil {
		return nil, err
	}
	return req, nil
}

func (l *limitJSON) limit() (limiter.Limit, *quota.FieldError) {
	alg, err := limiter.ParseAlgorithm(l.Algorithm)
	if err != nil {
		return limiter.Limit{}, quota.Invalid("algorithm", "%v", err)
	}
	return limiter.Limit{Name: l.Name, Algorithm: alg, Limit: l.Limit, Period: time.Duration(l.Period), Burst: l.Burst}, nil
}

func decodeRelease(r io.Reader) (*quota.ReleaseRequest, error) {
	var in releaseJSON
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	l, ferr := in.Limit.limit()
	if ferr != nil {
		return nil, ferr.Under("limit")
	}
	req := &quota.ReleaseRequest{Tenant: in.Tenant, Limit: l, Lease: in.LeaseID}
	return req, req.Validate()
}
