package cluster

import (
	"log/slog"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/config"
	"github.com/tollgate/tollgate/cluster/gossip"
	"github.com/tollgate/tollgate/limiter"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

func TestTheJournalKeepsWhatWasWrittenAcrossARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, left, err := openJournal(dir, slog.New(slog.DiscardHandler))
	if err != nil || len(left) != 0 {
		t.Fatalf("a new journal: %v, %d entries left", err, len(left))
	}
	limits := []limiter.Limit{{Name: quota.LimitTokensPerMinute, Limit: 1000, Period: time.Minute}}
	skeleton := func() *settlement {
		return &settlement{tenant: "acme", limits: limits, reserved: 300, day: "2026-05-01", origin: "node-1"}
	}
	cut, sent, applied, late := skeleton(), skeleton(), skeleton(), skeleton()
	for _, s := range []*settlement{cut, sent, applied, late} {
		j.admit(s)
	}
	late.degraded = true
	j.progress(cut.journal, quota.Usage{Model: "m", PromptTokens: 10, CompletionTokens: 25})
	final := sent.clone()
	final.usage, final.seq = quota.Usage{Model: "m", PromptTokens: 10, CompletionTokens: 90}, 77
	j.settled(final)
	j.settled(applied)
	j.write()
	j.done(applied)
	j.progress(cut.journal, quota.Usage{Model: "m", PromptTokens: 10, CompletionTokens: 30})
	j.write()
	j.progress(cut.journal, quota.Usage{Model: "m", PromptTokens: 10, CompletionTokens: 99}) // never written
	j.crash()
	j.close()

	j2, left, err := openJournal(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	byID := map[uint64]*journalEntry{}
	for _, e := range left {
		byID[e.s.journal] = e
	}
	if len(byID) != 3 || byID[applied.journal] != nil {
		t.Fatalf("entries left: %d (%v), want the 3 not applied", len(byID), byID)
	}
	if e := byID[cut.journal]; e.settled || e.s.usage.CompletionTokens != 30 || e.s.usage.Model != "m" || e.s.reserved != 300 {
		t.Fatalf("the request cut off: %+v (settled %v), want 30 completion tokens, the last written", e.s, e.settled)
	}
	if e := byID[sent.journal]; !e.settled || e.s.seq != 77 || e.s.usage.CompletionTokens != 90 {
		t.Fatalf("the settled request: %+v (settled %v), want its own seq 77 and 90 tokens", e.s, e.settled)
	}
	if e := byID[late.journal]; !e.s.degraded {
		t.Fatal("a degraded reservation came back as one its owner decided")
	}
	if id := j2.admit(skeleton()); id <= late.journal {
		t.Fatalf("a new entry after the restart got id %d, not above the %d left", id, late.journal)
	}
}

// A gateway node killed with a stream in flight bills, once it is back,
// what the stream had delivered by the journal's last write.
func TestAStreamCutOffByACrashIsBilledWhenTheNodeReturns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newRaftCluster(t, 3, func(cfg *Config) {
		if cfg.NodeName == "node-3" {
			cfg.InMemory, cfg.DataDir = false, dir
		}
	})
	putTenant(t, c.server("node-1"), &configv1.Tenant{Id: "acme", Plan: "gold"})
	c.waitConfig(func(v *config.View) bool { _, ok := v.Tenant("acme"); return ok })
	gw := c.server("node-3").Node
	if gw.journal == nil {
		t.Fatal("node-3 keeps no journal")
	}
	r, err := gw.Reserve(t.Context(), "acme", 500, time.Minute)
	if err != nil || !r.Allowed {
		t.Fatalf("reserve: %v %+v", err, r)
	}
	gw.Progress(r, quota.Usage{Model: "m", PromptTokens: 20, CompletionTokens: 40})
	gw.journal.write()
	gw.Progress(r, quota.Usage{Model: "m", PromptTokens: 20, CompletionTokens: 45}) // after the last write
	c.kill("node-3")
	c.waitRing(2)
	dead := time.Now()
	clustertest.Eventually(t, 2*gossip.DeadNodeReclaimTime, "gossip to let the name be reclaimed", func() bool {
		return time.Since(dead) > gossip.DeadNodeReclaimTime+500*time.Millisecond
	})
	back := c.add("node-3") // the same data directory
	clustertest.Eventually(t, 20*time.Second, "the cut-off stream in every node's ledger", func() bool {
		for _, s := range c.running() {
			u := s.Node.fsm.MonthUsage("acme", "2026-05")
			if u.GetRequests() != 1 || u.GetPromptTokens() != 20 || u.GetCompletionTokens() != 40 {
				return false
			}
		}
		return true
	})
	clustertest.Eventually(t, 5*time.Second, "the journal to empty", func() bool {
		back.Node.journal.mu.Lock()
		defer back.Node.journal.mu.Unlock()
		return len(back.Node.journal.live) == 0
	})
}

func TestAnUnreadableJournalEntryIsDroppedNotFatal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, _, err := openJournal(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	good := &settlement{tenant: "acme", reserved: 5, day: "2026-05-01", origin: "node-1"}
	j.admit(good)
	j.write()
	if err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(journalBucket)
		if err := b.Put([]byte("short"), []byte{0}); err != nil {
			return err
		}
		return b.Put([]byte{0, 0, 0, 0, 0, 0, 0, 99}, []byte{1, 0xff, 0xff, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	j.close()

	j2, left, err := openJournal(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a journal with unreadable entries: %v", err)
	}
	defer j2.close()
	if len(left) != 1 || left[0].s.tenant != "acme" {
		t.Fatalf("entries left: %+v, want the one readable", left)
	}
	n := 0
	_ = j2.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(journalBucket).Stats().KeyN; return nil })
	if n != 1 {
		t.Fatalf("%d entries on disk after the open, want the unreadable ones gone", n)
	}
}
