package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// RLS domains hold the descriptor rules of Envoy's rate limit service
// (envoy.service.ratelimit.v3), in the shape of envoyproxy/ratelimit's
// configuration: a tree of descriptors, each matching one entry of a
// request's descriptor by key and value, with a limit on the node the
// last entry reaches.

// Bounds on one domain, so that one write cannot pin every replica.
const (
	maxRLSDepth       = 8
	maxRLSDescriptors = 10_000
	// MaxRLSTextLen bounds a descriptor's key or value, in the rules and
	// in Envoy's requests.
	MaxRLSTextLen = 256
)

// RLSUnits are the units of Envoy's RateLimit.Unit, in seconds; a month
// is 30 days and a year 365, as envoyproxy/ratelimit counts them.
var RLSUnits = map[string]int64{
	"second": 1, "minute": 60, "hour": 3600, "day": 86400,
	"week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400,
}

// RLSWindow is a window of mult units of secs seconds each (0 counts as
// 1); ok is false when it would be longer than a limit's longest period
// (checked before multiplying, which could wrap).
func RLSWindow(secs int64, mult uint32) (window time.Duration, ok bool) {
	unit := time.Duration(secs) * time.Second
	m := time.Duration(max(mult, 1))
	if secs <= 0 || m > limiter.MaxPeriod/unit {
		return 0, false
	}
	return unit * m, true
}

// RLSPeriod is the window of a rate limit; ok is false for an unknown unit
// or a window longer than a limit's longest period.
func RLSPeriod(l *configv1.RLSRateLimit) (period time.Duration, ok bool) {
	secs, ok := RLSUnits[l.GetUnit()]
	if !ok {
		return 0, false
	}
	return RLSWindow(secs, l.GetUnitMultiplier())
}

// NormaliseRLSDomain lower-cases the units, as envoyproxy/ratelimit reads
// them in any case, so that the log holds one spelling.
func NormaliseRLSDomain(d *configv1.RLSDomain) {
	var walk func([]*configv1.RLSDescriptor)
	walk = func(ds []*configv1.RLSDescriptor) {
		for _, x := range ds {
			if l := x.GetRateLimit(); l != nil {
				l.Unit = strings.ToLower(l.GetUnit())
			}
			walk(x.GetDescriptors())
		}
	}
	walk(d.GetDescriptors())
}

// ValidateRLSDomain checks every descriptor of a domain.
func ValidateRLSDomain(d *configv1.RLSDomain) error {
	// Any text, not a name: Envoy Gateway names its domains after
	// listeners, "namespace/gateway/listener".
	if err := quota.CheckText("domain", d.GetDomain(), quota.MaxNameLen); err != nil {
		return err
	}
	if _, err := quota.ParseFailurePolicy(d.GetFailurePolicy()); err != nil {
		return quota.Invalid("failure_policy", "%v", err)
	}
	count := 0
	return validateRLSLevel("descriptors", d.GetDescriptors(), 1, &count)
}

func validateRLSLevel(path string, ds []*configv1.RLSDescriptor, depth int, count *int) error {
	if len(ds) > 0 && depth > maxRLSDepth {
		return quota.Invalid(path, "descriptors nest at most %d deep", maxRLSDepth)
	}
	seen := map[string]int{}
	for i, d := range ds {
		at := fmt.Sprintf("%s[%d]", path, i)
		if *count++; *count > maxRLSDescriptors {
			return quota.Invalid(at, "a domain holds at most %d descriptors", maxRLSDescriptors)
		}
		if err := quota.CheckText(at+".key", d.GetKey(), MaxRLSTextLen); err != nil {
			return err
		}
		if d.GetValue() != "" {
			if err := quota.CheckText(at+".value", d.GetValue(), MaxRLSTextLen); err != nil {
				return err
			}
		}
		id := d.GetKey() + "\x00" + d.GetValue()
		if j, dup := seen[id]; dup {
			return quota.Invalid(at, "key %q with value %q is already matched by %s[%d]", d.GetKey(), d.GetValue(), path, j)
		}
		seen[id] = i
		if err := validateRLSLimit(at+".rate_limit", d.GetRateLimit()); err != nil {
			return err
		}
		if err := validateRLSLevel(at+".descriptors", d.GetDescriptors(), depth+1, count); err != nil {
			return err
		}
	}
	return nil
}

func validateRLSLimit(path string, l *configv1.RLSRateLimit) error {
	if l == nil {
		return nil
	}
	if l.GetName() != "" {
		if err := quota.CheckText(path+".name", l.GetName(), quota.MaxNameLen); err != nil {
			return err
		}
	}
	if l.GetUnlimited() {
		if l.GetUnit() != "" || l.GetUnitMultiplier() != 0 {
			return quota.Invalid(path, "unlimited takes no unit or unit_multiplier")
		}
		return nil
	}
	if _, ok := RLSUnits[l.GetUnit()]; !ok {
		return quota.Invalid(path+".unit", "%q is not second, minute, hour, day, week, month or year", l.GetUnit())
	}
	if _, ok := RLSPeriod(l); !ok {
		return quota.Invalid(path+".unit_multiplier", "the window (%d × %s) is longer than %d days", l.GetUnitMultiplier(), l.GetUnit(), limiter.MaxPeriod/(24*time.Hour))
	}
	// requests_per_unit 0 refuses every request, as in envoyproxy/ratelimit.
	return nil
}

// RLSEntry is one entry of a request's descriptor.
type RLSEntry struct{ Key, Value string }

// RLSMatch finds the descriptor rule a request's descriptor reaches in
// domain, the way envoyproxy/ratelimit does: entry by entry, the rule
// for the key and exact value, else the first value prefix ("v*") in the
// rules' order, else the key alone; the rule's limit applies only if it
// matched the last entry. rule is nil when no limit applies; known is false
// when the domain does not exist.
func (v *View) RLSMatch(domain string, entries []RLSEntry) (rule *configv1.RLSDescriptor, known bool) {
	level, known := v.rlsIndex[domain]
	if !known {
		return nil, false
	}
	for i, e := range entries {
		next := level.find(e)
		if next == nil {
			return nil, true
		}
		if i == len(entries)-1 && next.rule.GetRateLimit() != nil {
			return next.rule, true
		}
		if next.children == nil {
			return nil, true
		}
		level = next.children
	}
	return nil, true
}

// rlsLevel indexes one level of a domain's descriptor tree.
type rlsLevel struct {
	exact    map[RLSEntry]*rlsNode
	prefixes []rlsPrefix // in the rules' order: the first that matches wins
	anyValue map[string]*rlsNode
}

type rlsNode struct {
	rule     *configv1.RLSDescriptor
	children *rlsLevel
}

type rlsPrefix struct {
	key, prefix string
	node        *rlsNode
}

func (l *rlsLevel) find(e RLSEntry) *rlsNode {
	if n, ok := l.exact[e]; ok {
		return n
	}
	for _, p := range l.prefixes {
		if p.key == e.Key && strings.HasPrefix(e.Value, p.prefix) {
			return p.node
		}
	}
	return l.anyValue[e.Key]
}

func newRLSLevel(ds []*configv1.RLSDescriptor) *rlsLevel {
	l := &rlsLevel{exact: map[RLSEntry]*rlsNode{}, anyValue: map[string]*rlsNode{}}
	for _, d := range ds {
		n := &rlsNode{rule: d}
		if len(d.GetDescriptors()) > 0 {
			n.children = newRLSLevel(d.GetDescriptors())
		}
		switch v := d.GetValue(); {
		case v == "":
			l.anyValue[d.GetKey()] = n
		case strings.HasSuffix(v, "*"):
			l.prefixes = append(l.prefixes, rlsPrefix{d.GetKey(), strings.TrimSuffix(v, "*"), n})
		default:
			l.exact[RLSEntry{d.GetKey(), v}] = n
		}
	}
	return l
}
