package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// Reservation is the answer to a gateway reservation: the decision for
// each of the plan's limits and what settling it needs.
type Reservation struct {
	*quota.CheckResponse
	Tenant string
	// Tokens is the estimate reserved against the token limits.
	Tokens int64
	// limits are the plan's limits the reservation was decided on.
	limits []limiter.Limit
	// journal is its entry in this node's journal (0: none), seq the
	// number its settlement goes by (0: drawn when it is settled).
	journal, seq uint64
}

// Reserve takes, in one atomic step on the tenant's owner, one request
// from requests per minute, tokens from tokens per minute and the monthly
// budget, and a lease on the plan's concurrent requests that lives for
// leaseTTL (DefaultLeaseTTL if 0). An admitted reservation must be settled
// exactly once, with Settle.
func (n *Node) Reserve(ctx context.Context, tenant string, tokens int64, leaseTTL time.Duration) (*Reservation, error) {
	if n.settles.pending() >= n.cfg.MaxPendingSettles {
		n.metrics.reservationsRefused.Inc()
		return nil, fmt.Errorf("%w: too many requests waiting to be settled on this node", quota.ErrOverloaded)
	}
	req := &quota.CheckRequest{Tenant: tenant, Plan: true, Reserve: true, Hits: 1, Tokens: tokens, LeaseTTL: leaseTTL}
	resp, err := n.Check(ctx, req)
	if err != nil {
		return nil, err
	}
	r := reservationOf(req, resp)
	if n.journal != nil && r.Allowed {
		// Numbered now, so that its settlement and a journal's resend of
		// it after a crash are one to the owner.
		r.seq = n.settles.nextSeq()
		r.journal = n.journal.admit(n.settlementOf(r, quota.Usage{}))
	}
	return r, nil
}

func reservationOf(req *quota.CheckRequest, resp *quota.CheckResponse) *Reservation {
	return &Reservation{CheckResponse: resp, Tenant: req.Tenant, Tokens: req.Tokens, limits: req.Limits}
}

// settleAbandoned refunds a reservation whose caller gave up (its client
// left, or the forward timeout passed) before the owner's admission came
// back: nobody will settle it otherwise, and its lease would be held until
// its TTL.
func (n *Node) settleAbandoned(req *quota.CheckRequest, resp *quota.CheckResponse) {
	if req.Reserve {
		n.Settle(reservationOf(req, resp), quota.Usage{Failed: true})
	}
}

// Settle settles an admitted reservation with what the request really
// used: the token limits are corrected (a refund, or a debt beyond the
// limit), the lease is released and the usage is recorded for the ledger,
// all on the tenant's owner. It only queues the work, so it never delays
// the caller; the queue has no bound, so nothing is dropped when the node
// is busy. A denied reservation needs no settling and is ignored.
func (n *Node) Settle(r *Reservation, u quota.Usage) {
	if r == nil || !r.Allowed {
		return
	}
	s := n.settlementOf(r, u)
	if s.journal != 0 { // numbered at admission (the queue numbers the others)
		n.journal.settled(s)
	}
	n.settles.add(s)
}

// Progress notes what an admitted reservation's request has used so far
// (a stream's tokens delivered), for the journal: if this node is killed
// before the request is settled, it is billed this much when the node
// restarts. It never blocks on the disk.
func (n *Node) Progress(r *Reservation, u quota.Usage) {
	if r != nil && r.journal != 0 {
		n.journal.progress(r.journal, u)
	}
}

// settlementOf is r's settlement with usage u, not yet queued.
func (n *Node) settlementOf(r *Reservation, u quota.Usage) *settlement {
	s := &settlement{
		tenant: r.Tenant, limits: r.limits, reserved: r.Tokens, usage: u,
		day: n.Now().UTC().Format("2006-01-02"), degraded: r.Degraded, origin: n.name,
		journal: r.journal, seq: r.seq,
	}
	for i, l := range r.limits {
		switch l.Name {
		case quota.LimitConcurrentRequests:
			s.lease = r.Limits[i].Lease
		case quota.LimitTokensPerMonth:
			s.monthWindow = r.Limits[i].Window
		}
	}
	return s
}

// settlement is a queued Settle.
type settlement struct {
	tenant      string
	limits      []limiter.Limit
	reserved    int64
	lease       uint64
	monthWindow int64
	usage       quota.Usage
	day         string
	// degraded reservations were decided in this node's fallback store
	// and are settled there.
	degraded bool
	// origin (the node that queued it) and seq identify it, so a resent
	// settlement is applied once.
	origin string
	seq    uint64
	// journal is its entry in this node's journal, 0 if none.
	journal uint64
	// hops counts how often it was passed on; attempts, how often sending
	// it to the owner failed; due, when it may be resent.
	hops     uint32
	attempts int
	due      time.Time
}

// clone copies s (its limits are shared: nobody changes them).
func (s *settlement) clone() *settlement {
	c := *s
	return &c
}

func (s *settlement) toProto() *peerv1.Settlement {
	return &peerv1.Settlement{
		Tenant: s.tenant, Limits: peer.SetPeerLimits(nil, s.limits), Reserved: s.reserved, LeaseId: s.lease, MonthWindow: s.monthWindow,
		Model: s.usage.Model, PromptTokens: s.usage.PromptTokens, CompletionTokens: s.usage.CompletionTokens,
		CostMicros: s.usage.CostMicros, Failed: s.usage.Failed, Day: s.day, Hops: s.hops, Origin: s.origin, Seq: s.seq,
	}
}

// settlementFromProto rebuilds and validates a settlement from a peer.
func settlementFromProto(in *peerv1.Settlement) (*settlement, error) {
	if err := quota.ValidateTenant("", in.GetTenant()); err != nil {
		return nil, err
	}
	limits, err := peer.LimitsFromPeer(in.GetLimits())
	if err != nil {
		return nil, err
	}
	for i := range limits {
		if err := quota.ValidateLimit(&limits[i]); err != nil {
			return nil, err.Under(fmt.Sprintf("limits[%d]", i))
		}
	}
	if _, err := time.Parse("2006-01-02", in.GetDay()); err != nil {
		return nil, quota.Invalid("day", "%q is not a date (YYYY-MM-DD)", in.GetDay())
	}
	for _, f := range []struct {
		name  string
		value int64
	}{{"reserved", in.GetReserved()}, {"prompt_tokens", in.GetPromptTokens()}, {"completion_tokens", in.GetCompletionTokens()}, {"cost_micros", in.GetCostMicros()}} {
		if f.value < 0 {
			return nil, quota.Invalid(f.name, "must be >= 0, got %d", f.value)
		}
	}
	return &settlement{
		tenant: in.GetTenant(), limits: limits, reserved: in.GetReserved(), lease: in.GetLeaseId(), monthWindow: in.GetMonthWindow(),
		usage: quota.Usage{Model: in.GetModel(), PromptTokens: in.GetPromptTokens(), CompletionTokens: in.GetCompletionTokens(),
			CostMicros: in.GetCostMicros(), Failed: in.GetFailed()},
		day: in.GetDay(), hops: in.GetHops(), origin: in.GetOrigin(), seq: in.GetSeq(),
	}, nil
}

// adjustments turn a settlement into the store's corrections.
func (s *settlement) adjustments() []limiter.Adjustment {
	out := make([]limiter.Adjustment, 0, len(s.limits))
	delta := s.usage.Tokens() - s.reserved
	for _, l := range s.limits {
		a := limiter.Adjustment{Limit: l}
		switch l.Name {
		case quota.LimitRequestsPerMinute:
			if !s.usage.Failed {
				continue
			}
			a.Delta = -1
		case quota.LimitTokensPerMinute:
			a.Delta = delta
		case quota.LimitTokensPerMonth:
			a.Delta, a.Window = delta, s.monthWindow
		case quota.LimitConcurrentRequests:
			a.Lease = s.lease
		}
		if a.Delta != 0 || a.Lease != 0 {
			out = append(out, a)
		}
	}
	return out
}

// record notes a settled request's usage for the next flush. charged is
// how many of its tokens this node's month entry holds (window), 0 if
// none.
func (n *Node) record(s *settlement, charged, window int64) {
	if s.usage.Failed {
		return
	}
	u := s.usage
	n.usage.add(dayKey{tenant: s.tenant, model: u.Model, day: s.day}, &configv1.Usage{
		Requests: 1, Tokens: u.Tokens(), PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, CostMicros: u.CostMicros,
	}, window, charged)
}
