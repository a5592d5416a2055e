package api

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// /v1/check is the API's hot path, and encoding/json, by reflection and
// with an allocation for most values, cost more of it than the decision
// itself. Its fixed shapes are read and written by hand here instead:
//
//   - the decoder takes the common form of a request, an object of the
//     known fields with plain strings, integers, and durations as strings
//     or whole seconds. Anything else (escapes, fractions, exponents,
//     nulls, unknown, repeated or differently cased keys, and every
//     malformed body) goes to encoding/json, whose answers and messages
//     stay what they were. FuzzCheckFastPath holds the two to the same
//     result on every body the fast path takes.
//   - the encoder writes exactly the bytes json.Encoder would (a test
//     compares them), strings with characters JSON escapes aside, which
//     it hands to encoding/json.

// bodyPool holds the buffers check bodies are read into and answers
// written from.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer put back: a rare huge body should not
// pin its memory in the pool.
const maxPooledBody = 64 << 10

func getBuffer() *bytes.Buffer {
	b := bodyPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyPool.Put(b)
	}
}

// DecodeCheck reads a /v1/check body and validates it.
func DecodeCheck(r io.Reader) (*quota.CheckRequest, error) {
	buf := getBuffer()
	defer putBuffer(buf)
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, jsonError(err)
	}
	return decodeCheckBytes(buf.Bytes())
}

// decodeCheckBytes decodes and validates a whole /v1/check body.
func decodeCheckBytes(body []byte) (*quota.CheckRequest, error) {
	var in checkJSON
	if parseCheckFast(body, &in) {
		return in.request()
	}
	return decodeCheckSlow(body)
}

// decodeCheckSlow decodes body with encoding/json.
func decodeCheckSlow(body []byte) (*quota.CheckRequest, error) {
	var in checkJSON
	if err := decodeJSON(bytes.NewReader(body), &in); err != nil {
		return nil, err
	}
	return in.request()
}

// scanner reads the fast path's JSON; ok turns false at the first thing
// it does not take, and every method does nothing after that.
type scanner struct {
	b  []byte
	i  int
	ok bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c, after white space.
func (s *scanner) byte(c byte) {
	s.ws()
	if s.ok && s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return
	}
	s.ok = false
}

// peek reports whether the next byte, after white space, is c, and
// consumes it if so.
func (s *scanner) peek(c byte) bool {
	s.ws()
	if s.ok && s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters, in valid
// UTF-8 (encoding/json would replace what is not), as its bytes.
func (s *scanner) str() []byte {
	s.byte('"')
	if !s.ok {
		return nil
	}
	start := s.i
	ascii := true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				s.ok = false
			}
			return v
		case c == '\\' || c < 0x20:
			s.ok = false
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	s.ok = false
	return nil
}

// int reads an integer in JSON's grammar that fits in an int64; a
// fraction or an exponent is for encoding/json.
func (s *scanner) int() int64 {
	s.ws()
	if !s.ok {
		return 0
	}
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	switch {
	case s.i == digits, s.b[digits] == '0' && s.i-digits > 1:
		s.ok = false
		return 0
	case s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E'):
		s.ok = false
		return 0
	}
	v, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	if err != nil {
		s.ok = false
	}
	return v
}

// object reads the members of an object, calling field with each key (the
// scanner then at its value), until field returns false or the object
// ends. A key seen twice is for encoding/json, which keeps the last.
func (s *scanner) object(field func(key []byte) bool) {
	s.byte('{')
	if s.peek('}') {
		return
	}
	var seen [8][]byte
	n := 0
	for s.ok {
		key := s.str()
		s.byte(':')
		for _, k := range seen[:min(n, len(seen))] {
			if bytes.Equal(k, key) {
				s.ok = false
			}
		}
		if n < len(seen) {
			seen[n] = key
		}
		n++
		if !s.ok || !field(key) {
			s.ok = false
			return
		}
		if s.peek('}') {
			return
		}
		s.byte(',')
	}
}

// limitNames holds the limit names checks have carried: a node's clients
// name a few limits between them, so each name is allocated once rather
// than once a check. It keeps at most maxLimitNames names of at most
// maxLimitNameLen bytes (past either, a name is allocated as before), so
// clients naming ever new limits cost it a few kilobytes.
var limitNames interner

const (
	maxLimitNames   = 256
	maxLimitNameLen = 64
)

// interner hands out one string for equal bytes.
type interner struct {
	mu sync.Mutex // serializes additions
	// names is replaced on each addition, never changed, so it is read
	// without the lock.
	names atomic.Pointer[map[string]string]
}

// get returns b as a string, the one it returned before for the same bytes
// if it keeps that.
func (t *interner) get(b []byte) string {
	if m := t.names.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	if len(s) > maxLimitNameLen {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[string]string
	if p := t.names.Load(); p != nil {
		old = *p
	}
	if kept, ok := old[s]; ok {
		return kept
	}
	if len(old) >= maxLimitNames {
		return s
	}
	m := make(map[string]string, len(old)+1)
	maps.Copy(m, old)
	m[s] = s
	t.names.Store(&m)
	return s
}

// text returns v as a string, without allocating for the names the API
// knows (algorithms, failure policies).
func text(v []byte) string {
	for _, name := range knownText {
		if string(v) == name {
			return name
		}
	}
	return string(v)
}

var knownText = func() []string {
	var names []string
	for a := limiter.TokenBucket; a <= limiter.CalendarMonth; a++ {
		names = append(names, a.String())
	}
	for p := quota.PolicyLocal; p <= quota.PolicyClosed; p++ {
		names = append(names, p.String())
	}
	return names
}()

// parseCheckFast decodes body into in if it is in the common form (see
// above), and reports whether it was.
func parseCheckFast(body []byte, in *checkJSON) bool {
	s := scanner{b: body, ok: true}
	s.object(func(key []byte) bool {
		switch string(key) {
		case "tenant":
			in.Tenant = string(s.str())
		case "hits":
			in.hits = optInt{s.int(), true}
		case "requests":
			in.requests = optInt{s.int(), true}
		case "tokens":
			in.Tokens = s.int()
		case "failure_policy":
			in.FailurePolicy = text(s.str())
		case "limits":
			s.limits(in)
		default:
			return false
		}
		return true
	})
	s.ws()
	return s.ok && s.i == len(s.b)
}

func (s *scanner) limits(in *checkJSON) {
	s.byte('[')
	in.Limits = make([]limitJSON, 0, 4)
	if s.peek(']') {
		return
	}
	for s.ok {
		var l limitJSON
		s.object(func(key []byte) bool {
			switch string(key) {
			case "name":
				l.Name = limitNames.get(s.str())
			case "algorithm":
				l.Algorithm = text(s.str())
			case "limit":
				l.Limit = s.int()
			case "burst":
				l.Burst = s.int()
			case "period":
				l.Period = s.period()
			default:
				return false
			}
			return true
		})
		in.Limits = append(in.Limits, l)
		if s.peek(']') {
			return
		}
		s.byte(',')
	}
}

// period reads a duration string or whole seconds, as jsonDuration does;
// what jsonDuration refuses is left to it, for its message.
func (s *scanner) period() jsonDuration {
	s.ws()
	if s.ok && s.i < len(s.b) && s.b[s.i] == '"' {
		v := s.str()
		if d, ok := simpleDuration(v); ok {
			return jsonDuration(d)
		}
		d, err := time.ParseDuration(string(v))
		if err != nil {
			s.ok = false
		}
		return jsonDuration(d)
	}
	secs := float64(s.int())
	if math.Abs(secs) > limiter.MaxPeriod.Seconds() {
		s.ok = false
	}
	return jsonDuration(time.Duration(secs * float64(time.Second)))
}

// writeCheckResponse writes resp as json.Encoder would write
// encodeCheckResponse(resp).
func writeCheckResponse(w io.Writer, resp *quota.CheckResponse) error {
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Write(appendCheckResponse(buf.AvailableBuffer(), resp))
	_, err := w.Write(buf.Bytes())
	return err
}

// appendCheckResponse appends the JSON of resp and a newline to b.
func appendCheckResponse(b []byte, resp *quota.CheckResponse) []byte {
	b = append(b, `{"allowed":`...)
	b = strconv.AppendBool(b, resp.Allowed)
	b = append(b, `,"limits":[`...)
	for i, l := range resp.Limits {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, l.Name)
		b = append(b, `,"allowed":`...)
		b = strconv.AppendBool(b, l.Allowed)
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, l.Limit, 10)
		b = append(b, `,"remaining":`...)
		b = strconv.AppendInt(b, l.Remaining, 10)
		b = append(b, `,"reset_after":`...)
		b = appendFloat(b, l.ResetAfter.Seconds())
		b = append(b, `,"retry_after":`...)
		b = appendFloat(b, l.RetryAfter.Seconds())
		if l.Lease != 0 {
			b = append(b, `,"lease_id":"`...)
			b = strconv.AppendUint(b, l.Lease, 10)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, `],"owner":`...)
	b = appendString(b, resp.Owner)
	if resp.Degraded {
		b = append(b, `,"degraded":true`...)
	}
	return append(b, "}\n"...)
}

// appendString appends s quoted; one with characters JSON escapes (quotes,
// backslashes, controls, <, > and & as encoding/json does, anything beyond
// ASCII) is quoted by encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat formats f as encoding/json does: the shortest decimal that
// reads back as f, in exponent form only outside 1e-6 ≤ |f| < 1e21.
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, '0') // durations are finite; encoding/json would refuse
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// simpleDuration reads the usual form of a period, a whole number and one
// unit ("60s", "1m", "500ms"), as time.ParseDuration would, without the
// copy of the text it needs; it reports false for any other form.
func simpleDuration(v []byte) (time.Duration, bool) {
	n, i := int64(0), 0
	for ; i < len(v) && i < 9 && v[i] >= '0' && v[i] <= '9'; i++ {
		n = n*10 + int64(v[i]-'0')
	}
	if i == 0 {
		return 0, false
	}
	var unit time.Duration
	switch string(v[i:]) {
	case "ns":
		unit = time.Nanosecond
	case "us", "µs":
		unit = time.Microsecond
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	default:
		return 0, false
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
