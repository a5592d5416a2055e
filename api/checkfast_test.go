package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// The JSON shapes of a /v1/check answer as encoding/json writes them: the
// reference the hand-written encoder is held to.

type checkResponseJSON struct {
	Allowed  bool              `json:"allowed"`
	Limits   []limitStatusJSON `json:"limits"`
	Owner    string            `json:"owner"`
	Degraded bool              `json:"degraded,omitempty"`
}

type limitStatusJSON struct {
	Name       string  `json:"name"`
	Allowed    bool    `json:"allowed"`
	Limit      int64   `json:"limit"`
	Remaining  int64   `json:"remaining"`
	ResetAfter float64 `json:"reset_after"`
	RetryAfter float64 `json:"retry_after"`
	// LeaseID is a string because JSON numbers lose precision past 2^53.
	LeaseID string `json:"lease_id,omitempty"`
}

func encodeCheckResponse(resp *quota.CheckResponse) *checkResponseJSON {
	out := &checkResponseJSON{Allowed: resp.Allowed, Owner: resp.Owner, Degraded: resp.Degraded, Limits: make([]limitStatusJSON, len(resp.Limits))}
	for i, l := range resp.Limits {
		out.Limits[i] = limitStatusJSON{
			Name:       l.Name,
			Allowed:    l.Allowed,
			Limit:      l.Limit,
			Remaining:  l.Remaining,
			ResetAfter: l.ResetAfter.Seconds(),
			RetryAfter: l.RetryAfter.Seconds(),
		}
		if l.Lease != 0 {
			out.Limits[i].LeaseID = fmt.Sprint(l.Lease)
		}
	}
	return out
}

func referenceCheckResponse(t testing.TB, resp *quota.CheckResponse) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(encodeCheckResponse(resp)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The hand-written answer is byte for byte what encoding/json writes.
func TestCheckResponseMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := []*quota.CheckResponse{
		{},
		{Allowed: true, Owner: "node-1", Limits: []quota.LimitStatus{{Name: "rpm", Result: limiter.Result{Allowed: true, Limit: 60, Remaining: 59, ResetAfter: time.Second}}}},
		{Owner: "n", Degraded: true, Limits: []quota.LimitStatus{
			{Name: "c", Result: limiter.Result{Allowed: true, Limit: 2, Remaining: 1, ResetAfter: 30 * time.Second, Lease: math.MaxUint64}},
			{Name: "tpm", Result: limiter.Result{Limit: 1 << 62, Remaining: -1, ResetAfter: time.Nanosecond, RetryAfter: 1500 * time.Millisecond}},
			{Name: "month", Result: limiter.Result{ResetAfter: math.MaxInt64, RetryAfter: 999 * time.Nanosecond}},
		}},
		{Owner: `a"b\c<d>&é\u2028`, Limits: []quota.LimitStatus{{Name: "\x00\n\u2029\xff"}}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		r := &quota.CheckResponse{Allowed: rng.IntN(2) == 0, Degraded: rng.IntN(4) == 0, Owner: fmt.Sprint("node-", rng.IntN(100))}
		for range rng.IntN(4) {
			r.Limits = append(r.Limits, quota.LimitStatus{Name: fmt.Sprint("l", rng.IntN(10)), Result: limiter.Result{
				Allowed: rng.IntN(2) == 0, Limit: rng.Int64(), Remaining: rng.Int64N(1000) - 10,
				ResetAfter: time.Duration(rng.Int64N(1 << rng.IntN(63))), RetryAfter: time.Duration(rng.Int64N(1 << rng.IntN(63))),
				Lease: rng.Uint64() * uint64(rng.IntN(2)),
			}})
		}
		cases = append(cases, r)
	}
	for _, resp := range cases {
		if got, want := string(appendCheckResponse(nil, resp)), referenceCheckResponse(t, resp); got != want {
			t.Fatalf("answer differs from encoding/json's:\n got %s\nwant %s", got, want)
		}
	}
}

// FuzzCheckFastPath holds the hand-written /v1/check decoder to
// encoding/json: whatever body it takes must decode the same through
// encoding/json, and give the same request or the same error.
func FuzzCheckFastPath(f *testing.F) {
	for _, seed := range []string{
		tenLimit,
		` { "tenant" : "t" , "hits" : 3 , "tokens" : -7 , "failure_policy" : "open" , "limits" : [ ] } `,
		`{"tenant":"t","requests":2,"limits":[{"name":"l","algorithm":"sliding_window","limit":5,"period":60,"burst":9}]}`,
		`{"tenant":"t","hits":1,"requests":1}`,
		`{"tenant":"tenant-é","limits":[{"name":"c","algorithm":"concurrency","limit":2,"period":"30s"},{"name":"m","algorithm":"calendar_month","limit":1}]}`,
		`{"tenant":"t","limits":[{"name":"l","limit":1,"period":31622401}]}`,
		`{"tenant":"t","limits":[{"name":"l","limit":1,"period":"1x"}]}`,
		`{"tenant":"t","tenant":"u"}`, `{"Tenant":"t"}`, `{"tenant":"t\u0041"}`, `{"tenant":"t","hits":01}`,
		`{"tenant":"t","hits":-0}`, `{"tenant":"t","hits":9223372036854775808}`, `{"tenant":"t","hits":1.0}`,
		`{"tenant":"t"} x`, `{}`, ``, `{"limits":[{}]}`, `{"limits":[{"name":"a","name":"b"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast checkJSON
		if !parseCheckFast(body, &fast) {
			return
		}
		var slow checkJSON
		if err := decodeJSON(bytes.NewReader(body), &slow); err != nil {
			t.Fatalf("the fast path took %q, encoding/json refuses it: %v", body, err)
		}
		// The fast path keeps hits and requests in place, where
		// encoding/json points to them.
		folded := slow
		folded.hits, folded.requests = slow.hits.or(slow.Hits), slow.requests.or(slow.Requests)
		folded.Hits, folded.Requests = nil, nil
		if !reflect.DeepEqual(fast, folded) {
			t.Fatalf("%q decodes as %+v, encoding/json says %+v", body, fast, folded)
		}
		freq, ferr := fast.request()
		sreq, serr := slow.request()
		if fmt.Sprint(ferr) != fmt.Sprint(serr) || !reflect.DeepEqual(freq, sreq) {
			t.Fatalf("%q: request %+v (%v), encoding/json's %+v (%v)", body, freq, ferr, sreq, serr)
		}
	})
}

// Bodies the fast path leaves to encoding/json still decode, with its
// messages.
func TestCheckSlowPathKeepsItsMessages(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"tenant":"t\u0041","limits":[{"name":"l","limit":1,"period":"1s"}]}`: "",
		`{"Tenant":"t","limits":[{"name":"l","limit":1,"period":1.5}]}`:        "",
		`{"tenant":"t","bogus":1}`:                                       "bogus: unknown field",
		`{"tenant":"t","limits":[{"name":"l","limit":1,"period":"1x"}]}`: "period: not a duration",
		`{"tenant":"t","hits":1.5}`:                                      "hits",
		`{"tenant":"t"} x`:                                               "unexpected data after the JSON object",
		``:                                                               "empty body",
	} {
		req, err := decodeCheckBytes([]byte(body))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want == "" && (req.Tenant != "tA" && req.Tenant != "t"):
			t.Errorf("%s: tenant %q", body, req.Tenant)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want one saying %q", body, err, want)
		}
	}
}

// BenchmarkDecodeCheck compares the hand-written decoder with
// encoding/json on the same body.
func BenchmarkDecodeCheck(b *testing.B) {
	body := []byte(`{"tenant":"tenant-123","hits":1,"limits":[{"name":"rpm","algorithm":"token_bucket","limit":1000000000,"period":"1m"}]}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCheckBytes(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in checkJSON
			if err := decodeJSON(bytes.NewReader(body), &in); err != nil {
				b.Fatal(err)
			}
			if _, err := in.request(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The common check body costs three allocations: its tenant's name, its
// limits as read, and the request (its limits included). The limit's name
// is the one kept from the first such body, and hits are read in place.
func TestDecodeCheckAllocations(t *testing.T) {
	body := []byte(`{"tenant":"acme","hits":2,"limits":[{"name":"alloc-test-rpm","limit":100,"period":"1m"}]}`)
	first, err := decodeCheckBytes(body)
	if err != nil {
		t.Fatal(err)
	}
	if first.Hits != 2 || first.Limits[0].Name != "alloc-test-rpm" {
		t.Fatalf("decoded %+v", first)
	}
	if got := testing.AllocsPerRun(100, func() {
		if _, err := decodeCheckBytes(body); err != nil {
			t.Fatal(err)
		}
	}); got > 3 {
		t.Errorf("%v allocations a check body, want at most 3", got)
	}
	again, _ := decodeCheckBytes(body)
	if unsafe.StringData(again.Limits[0].Name) != unsafe.StringData(first.Limits[0].Name) {
		t.Error("a limit's name is allocated afresh for each body")
	}
}

// The interner gives one string for equal bytes, and keeps no more than
// its bounds: past them it still answers the right text.
func TestInternerKeepsWithinItsBounds(t *testing.T) {
	var in interner
	a, b := in.get([]byte("rpm")), in.get([]byte("rpm"))
	if a != "rpm" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatalf("got %q and %q, not one string", a, b)
	}
	long := strings.Repeat("x", maxLimitNameLen+1)
	if got := in.get([]byte(long)); got != long {
		t.Fatalf("long name: got %q", got)
	}
	for i := 0; i < 2*maxLimitNames; i++ {
		name := fmt.Sprintf("limit-%d", i)
		if got := in.get([]byte(name)); got != name {
			t.Fatalf("got %q, want %q", got, name)
		}
	}
	if kept := len(*in.names.Load()); kept != maxLimitNames {
		t.Errorf("keeps %d names, want %d", kept, maxLimitNames)
	}
	if _, ok := (*in.names.Load())[long]; ok {
		t.Error("keeps a name longer than maxLimitNameLen")
	}
}
