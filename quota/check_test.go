package quota

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/limiter"
)

func TestCheckTextRefusesWhatMisleadsAReader(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"acme", "tenant-42.prod_eu", "Zürich", "日本", strings.Repeat("a", 256)} {
		if err := CheckText("tenant", ok, 256); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for name, bad := range map[string]string{
		"empty": "", "too long": strings.Repeat("a", 257), "NUL": "a\x00b", "newline": "a\nb", "escape": "\x1b[31m",
		"DEL": "a\x7f", "C1 control": "a\u0085b", "right-to-left override": "abc\u202egnp.exe", "isolate": "a\u2066b",
		"invalid UTF-8": "a\xffb",
	} {
		err := CheckText("tenant", bad, 256)
		if err == nil || err.Field != "tenant" || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s (%q): %v, want a field error on tenant", name, bad, err)
		}
	}
}

func TestCallersLimitsCannotReachAPlansBuckets(t *testing.T) {
	t.Parallel()
	rpm := limiter.Limit{Name: LimitRequestsPerMinute, Limit: 100, Period: time.Minute}
	for _, tc := range []struct {
		req   CheckRequest
		field string
	}{
		{CheckRequest{Tenant: "acme", Hits: 1, Limits: []limiter.Limit{rpm}}, "limits[0].name"},
		{CheckRequest{Tenant: "acme", Hits: 101, Limits: []limiter.Limit{{Name: "rpm", Limit: 100, Period: time.Minute}}}, "hits"},
		{CheckRequest{Tenant: "acme", Hits: 11, Limits: []limiter.Limit{{Name: "b", Limit: 100, Burst: 10, Period: time.Minute}}}, "hits"},
		{CheckRequest{Tenant: "acme", Hits: 3, Limits: []limiter.Limit{{Name: "c", Algorithm: limiter.Concurrency, Limit: 2, Period: time.Minute}}}, "hits"},
		{CheckRequest{Tenant: "a\u202eb", Hits: 1, Limits: []limiter.Limit{{Name: "x", Limit: 1, Period: time.Second}}}, "tenant"},
		{CheckRequest{Tenant: "acme", Hits: 1, Limits: []limiter.Limit{{Name: "x\x00", Limit: 1, Period: time.Second}}}, "limits[0].name"},
	} {
		var fe *FieldError
		if err := tc.req.Validate(""); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want a field error on %s", tc.req, err, tc.field)
		}
	}
	// The plan's own checks carry its limits, and a peek or a full burst is fine.
	plan := CheckRequest{Tenant: "acme", Plan: true, Hits: 1, Limits: []limiter.Limit{rpm}}
	full := CheckRequest{Tenant: "acme", Hits: 100, Limits: []limiter.Limit{{Name: "rpm", Limit: 100, Period: time.Minute}}}
	peek := CheckRequest{Tenant: "acme", Limits: []limiter.Limit{{Name: "rpm", Limit: 100, Period: time.Minute}}}
	for _, req := range []CheckRequest{plan, full, peek} {
		if err := req.Validate(""); err != nil {
			t.Errorf("%+v refused: %v", req, err)
		}
	}
}

// Valid checks allocate nothing to be validated: it runs on every check.
func TestValidatingACheckDoesNotAllocate(t *testing.T) {
	req := CheckRequest{Tenant: "tenant-7", Hits: 1, Limits: []limiter.Limit{{Name: "rpm", Limit: 100, Period: time.Minute}}}
	if n := testing.AllocsPerRun(100, func() { _ = req.Validate("requests[3].") }); n != 0 {
		t.Fatalf("Validate allocates %v times", n)
	}
}

// A request or response with a few limits is one allocation, and every
// size gets exactly the limits it asked for, zero.
func TestNewCheckRequestAndResponseAllocateOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 4, 5, 9} {
		req, resp := NewCheckRequest(n), NewCheckResponse(n)
		if len(req.Limits) != n || cap(req.Limits) != n || len(resp.Limits) != n || cap(resp.Limits) != n {
			t.Errorf("n=%d: request limits len %d cap %d, response len %d cap %d", n,
				len(req.Limits), cap(req.Limits), len(resp.Limits), cap(resp.Limits))
		}
		for i := range n {
			if req.Limits[i] != (limiter.Limit{}) || resp.Limits[i] != (LimitStatus{}) {
				t.Errorf("n=%d: limit %d not zero", n, i)
			}
		}
		want := 1.0
		if n > 4 {
			want = 2
		}
		if got := testing.AllocsPerRun(50, func() { req = NewCheckRequest(n) }); got != want {
			t.Errorf("NewCheckRequest(%d): %v allocations, want %v", n, got, want)
		}
		if got := testing.AllocsPerRun(50, func() { resp = NewCheckResponse(n) }); got != want {
			t.Errorf("NewCheckResponse(%d): %v allocations, want %v", n, got, want)
		}
	}
}
