package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// dayKey is one row of the usage ledger: a tenant's use of a model on a
// day (YYYY-MM-DD).
type dayKey struct{ tenant, model, day string }

// usageBuffer holds the usage a node has admitted and not yet committed.
// A flush is written with a sequence number and retried unchanged until it
// commits, so the FSM applies it exactly once. Tokens charged to a
// monthly-budget entry in this node's store are refunded from it once the
// flush is in this node's copy of the ledger: the budget check counts
// committed usage plus the store's entry, and each token is in exactly one
// of them (for a moment in both, never in neither).
type usageBuffer struct {
	mu      sync.Mutex
	pending map[dayKey]*configv1.Usage
	charged map[monthCharge]int64 // tokens in the store's month entries, by tenant and month
	// inflight is the flush being written and what it will refund.
	inflight        *configv1.RecordUsage
	inflightCharged map[monthCharge]int64
	// refunds wait for the local copy of the ledger to reach their index.
	refunds []usageRefund
	seq     uint64
	// journaled are settlements in the journal whose usage is pending
	// (inflightJournaled: in the flush being written); the journal forgets
	// them once it commits.
	journaled, inflightJournaled []*settlement
}

type monthCharge struct {
	tenant string
	window int64 // limiter.Result.Window of a calendar-month limit
}

type usageRefund struct {
	index   uint64
	charged map[monthCharge]int64
}

func newUsageBuffer() *usageBuffer {
	return &usageBuffer{pending: map[dayKey]*configv1.Usage{}, charged: map[monthCharge]int64{}, seq: firstSeq()}
}

// firstSeq starts a node's sequence of flushes or settlements from the
// clock, so that it keeps growing across restarts of the node and a
// receiver that deduplicates by (node, seq) never mistakes a new one for
// an old one.
func firstSeq() uint64 { return uint64(time.Now().UnixNano()) }

// add records admitted usage. charged is how many of its tokens were
// counted in this node's month entry for the tenant (window), 0 if none.
func (b *usageBuffer) add(k dayKey, u *configv1.Usage, window, charged int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	config.AddUsage(b.pending, k, u)
	if charged > 0 {
		b.charged[monthCharge{k.tenant, window}] += charged
	}
}

// holdJournal keeps s in the journal until the flush of its usage, just
// recorded, commits.
func (b *usageBuffer) holdJournal(s *settlement) {
	b.mu.Lock()
	b.journaled = append(b.journaled, s)
	b.mu.Unlock()
}

// flushUsage writes the pending usage (or retries the flush in flight) and
// refunds what has reached this node's ledger.
func (n *Node) flushUsage(ctx context.Context) {
	b := n.usage
	b.mu.Lock()
	if b.inflight == nil && len(b.pending) > 0 {
		b.seq++
		cmd := &configv1.RecordUsage{Node: n.name, Seq: b.seq}
		for k, u := range b.pending {
			cmd.Deltas = append(cmd.Deltas, &configv1.UsageDelta{Tenant: k.tenant, Model: k.model, Day: k.day, Usage: u})
		}
		b.inflight, b.inflightCharged = cmd, b.charged
		b.pending, b.charged = map[dayKey]*configv1.Usage{}, map[monthCharge]int64{}
		b.inflightJournaled, b.journaled = b.journaled, nil
	}
	inflight := b.inflight
	b.mu.Unlock()

	if inflight != nil {
		res, index, err := n.applyIndexed(ctx, &configv1.Command{Op: &configv1.Command_RecordUsage{RecordUsage: inflight}})
		if err != nil {
			n.raftMetrics.flushes.WithLabelValues("error").Inc()
			n.log.Warn("flushing usage; will retry", "tenants", len(inflight.GetDeltas()), "err", err)
		} else {
			refused := res.GetCode() != 0
			if refused {
				// The FSM refused what it carried: resending it would be
				// refused again. Never expected of a node's own flush. Its
				// tokens stay in the month entries (no refund): the budget
				// errs on the side of the limit.
				n.raftMetrics.flushes.WithLabelValues("refused").Inc()
				n.log.Error("usage flush refused by the configuration; dropped", "tenants", len(inflight.GetDeltas()), "reason", res.GetMessage())
			} else {
				n.raftMetrics.flushes.WithLabelValues("ok").Inc()
			}
			b.mu.Lock()
			if !refused {
				b.refunds = append(b.refunds, usageRefund{index: index, charged: b.inflightCharged})
			}
			committed := b.inflightJournaled
			b.inflight, b.inflightCharged, b.inflightJournaled = nil, nil, nil
			b.mu.Unlock()
			n.journalDone(committed...)
		}
	}
	n.refundFlushed()
}

// refundFlushed takes flushed tokens out of the month entries once this
// node's ledger counts them.
func (n *Node) refundFlushed() {
	b := n.usage
	applied := n.fsm.Applied()
	b.mu.Lock()
	var due []usageRefund
	keep := b.refunds[:0]
	for _, r := range b.refunds {
		if r.index <= applied {
			due = append(due, r)
		} else {
			keep = append(keep, r)
		}
	}
	b.refunds = keep
	b.mu.Unlock()
	month := limiter.Limit{Name: quota.LimitTokensPerMonth, Algorithm: limiter.CalendarMonth, Limit: 1}
	for _, r := range due {
		for c, tokens := range r.charged {
			// A tenant handed off meanwhile took its entry along: the new
			// owner counts these tokens twice until the month ends, which
			// errs on the side of the budget.
			_ = n.store.Adjust(c.tenant, []limiter.Adjustment{{Limit: month, Delta: -tokens, Window: c.window}})
		}
	}
}

// runUsageFlusher flushes every UsageFlushInterval until ctx ends.
func (n *Node) runUsageFlusher(ctx context.Context) {
	every(ctx, n.cfg.UsageFlushInterval, func() { n.flushUsage(ctx) })
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// FlushUsage writes all usage admitted so far, retrying until it commits
// or ctx ends: for a graceful stop and before a hand-off.
func (n *Node) FlushUsage(ctx context.Context) error {
	if n.raft == nil {
		return nil
	}
	for {
		n.flushUsage(ctx)
		n.usage.mu.Lock()
		left := n.usage.inflight != nil || len(n.usage.pending) > 0
		var last uint64
		for _, r := range n.usage.refunds {
			last = max(last, r.index)
		}
		n.usage.mu.Unlock()
		if !left {
			// Refund before returning: a hand-off that follows must not
			// carry flushed tokens along.
			err := n.fsm.WaitApplied(ctx, last)
			n.refundFlushed()
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pendingRows counts the usage rows (tenant, model, day) not yet committed.
func (b *usageBuffer) pendingRows() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.pending)
	if b.inflight != nil {
		n += len(b.inflight.GetDeltas())
	}
	return n
}
