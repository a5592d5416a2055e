package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// Envoy's rate limit service (envoy.service.ratelimit.v3), served on the
// public gRPC port. A request names a domain and descriptors; each
// descriptor is matched against the domain's rules (config replicated by
// Raft, see cluster/config's RLSMatch) and, when a limit applies, checked
// as a fixed window on the owner of its counter, whose tenant is the
// domain and the descriptor's entries. Windows are aligned to the epoch,
// as envoyproxy/ratelimit aligns them, so a client moving from it sees
// the same resets.

// RLSConfig is how a node answers Envoy.
type RLSConfig struct {
	// UnknownDomainOverLimit answers OVER_LIMIT for a domain no rules
	// name. Envoy's convention, and the default, is OK: a domain without
	// rules limits nothing.
	UnknownDomainOverLimit bool
}

// RLSNode is what the RLS service needs of a node: its checks, its
// current configuration (read without waiting) and the time its limiter
// runs on.
type RLSNode interface {
	Checker
	Config() *config.View
	Now() time.Time
}

// RLSService returns envoy.service.ratelimit.v3.RateLimitService over a
// node's checks and its rules.
func RLSService(node RLSNode, rc RLSConfig, reg prometheus.Registerer) rlsv3.RateLimitServiceServer {
	return &rlsService{node: node, rc: rc, metrics: newRLSMetrics(reg)}
}

type rlsService struct {
	rlsv3.UnimplementedRateLimitServiceServer
	node    RLSNode
	rc      RLSConfig
	metrics *rlsMetrics
}

// rlsLimit is the limit one descriptor is checked against; an unlimited
// rule's has unlimited set and nothing else.
type rlsLimit struct {
	unlimited bool
	name      string
	rpu       uint32
	unit      rlsv3.RateLimitResponse_RateLimit_Unit
	mult      uint32
	period    time.Duration
	shadow    bool
	policy    quota.FailurePolicy
	limitKey  string // the limit's name in the check
}

var unlimitedRule = &rlsLimit{unlimited: true}

func (s *rlsService) ShouldRateLimit(ctx context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	if err := validateRLSRequest(in); err != nil {
		return nil, quotapb.Status(err)
	}
	view, now := s.node.Config(), s.node.Now()
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses: make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(in.GetDescriptors()))}
	limits := make([]*rlsLimit, len(in.GetDescriptors()))
	var checks []quota.CheckRequest
	var checked []int // the descriptor of each check
	for i, d := range in.GetDescriptors() {
		st := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		resp.Statuses[i] = st
		l, known := s.limitFor(view, in.GetDomain(), d)
		switch {
		case !known:
			if s.rc.UnknownDomainOverLimit {
				st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			}
			s.metrics.unknownDomain.Inc()
			continue
		case l == nil:
			s.metrics.noLimit.Inc()
			continue
		case l.unlimited:
			st.LimitRemaining = math.MaxUint32 // as envoyproxy/ratelimit answers
			s.metrics.ok.Inc()
			continue
		}
		limits[i] = l
		st.CurrentLimit = l.proto()
		hits := int64(max(in.GetHitsAddend(), 1))
		if h := d.GetHitsAddend(); h != nil {
			hits = int64(min(h.GetValue(), 1<<40))
		}
		if l.rpu == 0 || hits > int64(l.rpu) {
			// More than a window can ever hold (or a rule of 0, which
			// refuses everything): over the limit, and nothing counted.
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			st.DurationUntilReset = durationpb.New(l.untilReset(now, 0))
			continue
		}
		checks = append(checks, quota.CheckRequest{Tenant: rlsTenant(in.GetDomain(), d.GetEntries()), Hits: hits, FailurePolicy: l.policy,
			Limits: []limiter.Limit{{Name: l.limitKey, Algorithm: limiter.FixedWindow, Limit: int64(l.rpu), Period: l.period}}})
		checked = append(checked, i)
	}
	if len(checks) > 0 {
		answers, err := s.node.CheckBatch(ctx, checks)
		if err != nil {
			return nil, quotapb.Status(err)
		}
		for j, a := range answers {
			if len(a.Limits) != 1 {
				return nil, status.Errorf(codes.Internal, "descriptors[%d]: the owner answered %d limits for 1", checked[j], len(a.Limits))
			}
			i := checked[j]
			st, r := resp.Statuses[i], a.Limits[0].Result
			st.DurationUntilReset = durationpb.New(limits[i].untilReset(now, r.ResetAfter))
			if a.Allowed {
				st.LimitRemaining = uint32(min(max(r.Remaining, 0), int64(limits[i].rpu)))
			} else {
				st.Code = rlsv3.RateLimitResponse_OVER_LIMIT // and 0 remaining
			}
		}
	}
	for i, st := range resp.Statuses {
		if l := limits[i]; l != nil {
			switch {
			case st.Code == rlsv3.RateLimitResponse_OVER_LIMIT && l.shadow:
				st.Code = rlsv3.RateLimitResponse_OK // decided as usual, never refused
				s.metrics.shadowOverLimit.Inc()
			case st.Code == rlsv3.RateLimitResponse_OVER_LIMIT:
				s.metrics.overLimit.Inc()
			default:
				s.metrics.ok.Inc()
			}
		}
		if st.Code == rlsv3.RateLimitResponse_OVER_LIMIT {
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	resp.ResponseHeadersToAdd = rlsHeaders(resp.Statuses, limits)
	if resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT {
		s.metrics.requestsOverLimit.Inc()
	} else {
		s.metrics.requestsOK.Inc()
	}
	return resp, nil
}

// limitFor is the limit a descriptor is checked against: its own override,
// else the domain's rule it matches (nil if none). known is false when the
// domain has no rules: then, as in envoyproxy/ratelimit, not even an
// override applies.
func (s *rlsService) limitFor(view *config.View, domain string, d *ratelimitv3.RateLimitDescriptor) (l *rlsLimit, known bool) {
	dom, known := view.RLSDomain(domain)
	if !known {
		return nil, false
	}
	policy, err := quota.ParseFailurePolicy(dom.GetFailurePolicy())
	if err != nil {
		policy = quota.PolicyLocal // refused when written; never reached
	}
	if o := d.GetLimit(); o != nil {
		unit := strings.ToLower(o.GetUnit().String())
		mult := o.GetUnitMultiplier().GetValue()
		period, _ := config.RLSWindow(config.RLSUnits[unit], mult) // validateRLSRequest checked it
		return newRLSLimit("", o.GetRequestsPerUnit(), unit, mult, period, false, policy), true
	}
	entries := make([]config.RLSEntry, len(d.GetEntries()))
	for i, e := range d.GetEntries() {
		entries[i] = config.RLSEntry{Key: e.GetKey(), Value: e.GetValue()}
	}
	rule, _ := view.RLSMatch(domain, entries)
	switch rl := rule.GetRateLimit(); {
	case rule == nil:
		return nil, true
	case rl.GetUnlimited():
		return unlimitedRule, true
	default:
		period, _ := config.RLSPeriod(rl) // ValidateRLSDomain checked it when the rule was written
		return newRLSLimit(rl.GetName(), rl.GetRequestsPerUnit(), rl.GetUnit(), rl.GetUnitMultiplier(), period, rule.GetShadowMode(), policy), true
	}
}

func newRLSLimit(name string, rpu uint32, unit string, mult uint32, period time.Duration, shadow bool, policy quota.FailurePolicy) *rlsLimit {
	// The window is in the limit's name: a rule whose unit changes counts
	// afresh rather than reshaping the old window's count.
	return &rlsLimit{name: name, rpu: rpu, unit: rlsv3.RateLimitResponse_RateLimit_Unit(rlsv3.RateLimitResponse_RateLimit_Unit_value[strings.ToUpper(unit)]),
		mult: max(mult, 1), period: period, shadow: shadow, policy: policy,
		limitKey: "rls_" + strconv.FormatInt(int64(period/time.Second), 10) + "s"}
}

func (l *rlsLimit) proto() *rlsv3.RateLimitResponse_RateLimit {
	out := &rlsv3.RateLimitResponse_RateLimit{Name: l.name, RequestsPerUnit: l.rpu, Unit: l.unit}
	if l.mult > 1 {
		out.UnitMultiplier = wrapperspb.UInt32(l.mult)
	}
	return out
}

// untilReset is how long until the current window ends: the owner's
// answer when it gave one, else the epoch-aligned window's end by this
// node's clock.
func (l *rlsLimit) untilReset(now time.Time, owner time.Duration) time.Duration {
	if owner > 0 {
		return owner
	}
	p := int64(l.period)
	return time.Duration(p - now.UnixNano()%p)
}

// maxRLSEntries bounds the entries of one of Envoy's descriptors.
const maxRLSEntries = 32

func validateRLSRequest(in *rlsv3.RateLimitRequest) error {
	if err := quota.CheckText("domain", in.GetDomain(), quota.MaxNameLen); err != nil {
		return err
	}
	switch n := len(in.GetDescriptors()); {
	case n == 0:
		return quota.Invalid("descriptors", "at least one descriptor is required")
	case n > quota.MaxChecksPerBatch:
		return quota.Invalid("descriptors", "at most %d descriptors per request, got %d", quota.MaxChecksPerBatch, n)
	}
	for i, d := range in.GetDescriptors() {
		at := "descriptors[" + strconv.Itoa(i) + "]"
		switch n := len(d.GetEntries()); {
		case n == 0:
			return quota.Invalid(at+".entries", "at least one entry is required")
		case n > maxRLSEntries:
			return quota.Invalid(at+".entries", "at most %d entries, got %d", maxRLSEntries, n)
		}
		for j, e := range d.GetEntries() {
			ea := at + ".entries[" + strconv.Itoa(j) + "]"
			if err := quota.CheckText(ea+".key", e.GetKey(), config.MaxRLSTextLen); err != nil {
				return err
			}
			if err := quota.CheckText(ea+".value", e.GetValue(), config.MaxRLSTextLen); err != nil {
				return err
			}
		}
		if d.GetIsNegativeHits() {
			return quota.Invalid(at+".is_negative_hits", "is not supported: hits are only ever consumed")
		}
		if o := d.GetLimit(); o != nil {
			secs, ok := config.RLSUnits[strings.ToLower(o.GetUnit().String())]
			if !ok {
				return quota.Invalid(at+".limit.unit", "%v is not a unit of time", o.GetUnit())
			}
			if _, ok := config.RLSWindow(secs, o.GetUnitMultiplier().GetValue()); !ok {
				return quota.Invalid(at+".limit.unit_multiplier", "the window is longer than %d days", limiter.MaxPeriod/(24*time.Hour))
			}
		}
	}
	return nil
}

// rlsTenant is the counter of a descriptor: "rls/<domain>/<k>=<v>/...",
// with '/', '=' and '%' escaped so that no two descriptors share one, or
// "rls/#<hash of that>" when it would be longer than a tenant name may be.
func rlsTenant(domain string, entries []*ratelimitv3.RateLimitDescriptor_Entry) string {
	var b strings.Builder
	b.WriteString("rls/")
	rlsEscape(&b, domain)
	for _, e := range entries {
		b.WriteByte('/')
		rlsEscape(&b, e.GetKey())
		b.WriteByte('=')
		rlsEscape(&b, e.GetValue())
	}
	if b.Len() <= quota.MaxTenantLen {
		return b.String()
	}
	sum := sha256.Sum256([]byte(b.String()))
	return "rls/#" + hex.EncodeToString(sum[:])
}

func rlsEscape(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/', '=', '%', '#':
			b.WriteByte('%')
			b.WriteString(strconv.FormatUint(uint64(c), 16))
		default:
			b.WriteByte(c)
		}
	}
}

// rlsHeaders are the IETF draft-03 fields envoyproxy/ratelimit sends when
// its LIMIT_RESPONSE_HEADERS_ENABLED is on: RateLimit-Limit (the
// requests per unit), RateLimit-Remaining and RateLimit-Reset (seconds),
// for the first descriptor over its limit, else the one with the least
// left; none when no limit applied.
func rlsHeaders(statuses []*rlsv3.RateLimitResponse_DescriptorStatus, limits []*rlsLimit) []*corev3.HeaderValue {
	tight := -1
	for i, st := range statuses {
		if limits[i] == nil {
			continue
		}
		if st.Code == rlsv3.RateLimitResponse_OVER_LIMIT { // shadowed ones are OK by now
			tight = i
			break
		}
		if tight < 0 || st.LimitRemaining < statuses[tight].LimitRemaining {
			tight = i
		}
	}
	if tight < 0 {
		return nil
	}
	st := statuses[tight]
	reset := (st.GetDurationUntilReset().AsDuration() + time.Second - 1) / time.Second
	return []*corev3.HeaderValue{
		{Key: "RateLimit-Limit", Value: strconv.FormatUint(uint64(st.CurrentLimit.RequestsPerUnit), 10)},
		{Key: "RateLimit-Remaining", Value: strconv.FormatUint(uint64(st.LimitRemaining), 10)},
		{Key: "RateLimit-Reset", Value: strconv.FormatInt(int64(reset), 10)},
	}
}

// rlsMetrics are the service's series, each looked up once: a
// descriptor is counted without hashing its labels.
type rlsMetrics struct {
	requestsOK, requestsOverLimit                          prometheus.Counter
	ok, overLimit, shadowOverLimit, noLimit, unknownDomain prometheus.Counter
}

func newRLSMetrics(reg prometheus.Registerer) *rlsMetrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_rls_requests_total",
		Help: "Envoy ShouldRateLimit calls answered, by overall code (ok, over_limit)."}, []string{"code"})
	descriptors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_rls_descriptors_total",
		Help: "Envoy descriptors decided, by outcome: ok, over_limit, shadow_over_limit (over the limit in shadow mode, answered OK), no_limit (no rule applies), unknown_domain."}, []string{"outcome"})
	reg.MustRegister(requests, descriptors)
	return &rlsMetrics{
		requestsOK: requests.WithLabelValues("ok"), requestsOverLimit: requests.WithLabelValues("over_limit"),
		ok: descriptors.WithLabelValues("ok"), overLimit: descriptors.WithLabelValues("over_limit"),
		shadowOverLimit: descriptors.WithLabelValues("shadow_over_limit"), noLimit: descriptors.WithLabelValues("no_limit"),
		unknownDomain: descriptors.WithLabelValues("unknown_domain"),
	}
}
