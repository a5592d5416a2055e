package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota"
)

// journal keeps, on disk, the gateway requests this node has admitted and
// their owners have not applied yet: those in flight, with what they have
// delivered so far, and those settled and on their way to the owner. It is
// written in batches, one fsync every journalInterval, never on a
// request's path. When a node is killed -9 and restarts on the same data
// directory, it settles what the journal holds: a stream cut off by the
// crash is billed what it had delivered up to the last batch, a settlement
// that had not reached its owner is sent again (with its sequence number,
// so an owner that applied it already skips it).
type journal struct {
	db  *bolt.DB
	log *slog.Logger

	writeMu sync.Mutex // one write at a time, so batches land in order

	mu      sync.Mutex
	live    map[uint64]*journalEntry // written or to be written
	dirty   map[uint64]bool          // to write
	gone    map[uint64]bool          // to delete
	next    uint64
	crashed bool // Crash: nothing more reaches the disk
	commits prometheus.Histogram
}

// journalInterval is how often the journal is written: a crash loses what
// streams delivered in the last one (and the batch being written).
const journalInterval = 100 * time.Millisecond

// journalEntry is one request: its settlement as it stands.
type journalEntry struct {
	s       *settlement
	settled bool // Settle has been called: s.usage is final, s.seq set
}

var journalBucket = []byte("requests")

// openJournal opens (or creates) dir/journal.db and returns the journal
// and the entries a previous run left, to settle once the node is ready.
func openJournal(dir string, log *slog.Logger) (*journal, []*journalEntry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "journal.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{db: db, log: log, live: map[uint64]*journalEntry{}, dirty: map[uint64]bool{}, gone: map[uint64]bool{}}
	var left []*journalEntry
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(journalBucket)
		if err != nil {
			return err
		}
		var bad [][]byte
		err = b.ForEach(func(k, v []byte) error {
			e, err := decodeJournalEntry(v)
			if err == nil && len(k) != 8 {
				err = fmt.Errorf("a key of %d bytes", len(k))
			}
			if err != nil {
				log.Warn("unreadable journal entry dropped", "key", fmt.Sprintf("%x", k), "err", err)
				bad = append(bad, slices.Clone(k))
				return nil
			}
			id := binary.BigEndian.Uint64(k)
			j.next = max(j.next, id)
			e.s.journal = id
			j.live[id] = e
			left = append(left, e)
			return nil
		})
		for _, k := range bad { // not within ForEach, which must not change the bucket
			if err == nil {
				err = b.Delete(k)
			}
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	return j, left, nil
}

func (j *journal) register(reg *prometheus.Registry) {
	j.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tollgate_journal_commit_seconds",
		Help:    "Time to write one batch of the gateway request journal, fsync included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
	})
	reg.MustRegister(j.commits, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_journal_requests",
		Help: "Gateway requests in the journal: admitted here, not yet applied by their owner.",
	}, func() float64 {
		j.mu.Lock()
		defer j.mu.Unlock()
		return float64(len(j.live))
	}))
}

// admit notes an admitted reservation and returns its id.
func (j *journal) admit(s *settlement) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.next++
	s.journal = j.next
	j.live[j.next] = &journalEntry{s: s}
	j.dirty[j.next] = true
	return j.next
}

// progress notes what an admitted request has used so far.
func (j *journal) progress(id uint64, u quota.Usage) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.live[id]; e != nil && !e.settled {
		e.s.usage = u
		j.dirty[id] = true
	}
}

// settled notes the settlement of an admitted request, queued as s.
func (j *journal) settled(s *settlement) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.live[s.journal]; e != nil {
		e.s, e.settled = s.clone(), true
		j.dirty[s.journal] = true
	}
}

// done forgets requests whose owner has applied them (or whose usage is
// recorded here).
func (j *journal) done(ss ...*settlement) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range ss {
		if s.journal == 0 || j.live[s.journal] == nil {
			continue
		}
		delete(j.live, s.journal)
		delete(j.dirty, s.journal)
		j.gone[s.journal] = true
	}
}

// run writes the journal every journalInterval until ctx ends.
func (j *journal) run(ctx context.Context) { every(ctx, journalInterval, j.write) }

// close writes what is left and closes the file, once nothing settles any
// more.
func (j *journal) close() {
	j.write()
	if err := j.db.Close(); err != nil {
		j.log.Warn("closing the request journal", "err", err)
	}
}

// crash stops all writes, as a kill -9 would (for failure tests).
func (j *journal) crash() {
	j.mu.Lock()
	j.crashed = true
	j.mu.Unlock()
}

// write commits what changed since the last write, in one transaction.
func (j *journal) write() {
	j.writeMu.Lock()
	defer j.writeMu.Unlock()
	j.mu.Lock()
	if j.crashed || len(j.dirty) == 0 && len(j.gone) == 0 {
		j.mu.Unlock()
		return
	}
	snap := make(map[uint64]journalEntry, len(j.dirty))
	for id := range j.dirty {
		if e := j.live[id]; e != nil {
			snap[id] = journalEntry{s: e.s.clone(), settled: e.settled}
		}
	}
	gone := j.gone
	j.dirty, j.gone = map[uint64]bool{}, map[uint64]bool{}
	j.mu.Unlock()
	puts := make(map[uint64][]byte, len(snap)) // encoded outside the lock: streams report progress meanwhile
	for id, e := range snap {
		puts[id] = encodeJournalEntry(&e)
	}

	start := time.Now()
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(journalBucket)
		var k [8]byte
		for id := range gone {
			binary.BigEndian.PutUint64(k[:], id)
			if err := b.Delete(k[:]); err != nil {
				return err
			}
		}
		for id, v := range puts {
			binary.BigEndian.PutUint64(k[:], id)
			if err := b.Put(k[:], v); err != nil {
				return err
			}
		}
		return nil
	})
	if j.commits != nil {
		j.commits.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		// Written again with the next batch: a full disk must not lose
		// the requests.
		j.log.Warn("writing the request journal; retrying", "err", err)
		j.mu.Lock()
		for id := range puts {
			if j.live[id] != nil {
				j.dirty[id] = true
			}
		}
		for id := range gone {
			if j.live[id] == nil {
				j.gone[id] = true
			}
		}
		j.mu.Unlock()
	}
}

// An entry on disk: a byte of flags and the settlement.
const (
	entrySettled  = 1 << 0
	entryDegraded = 1 << 1 // decided by the failure policy, in the fallback store
)

func encodeJournalEntry(e *journalEntry) []byte {
	b, _ := proto.Marshal(e.s.toProto()) // a message of scalars and strings: it marshals
	var flags byte
	if e.settled {
		flags |= entrySettled
	}
	if e.s.degraded {
		flags |= entryDegraded
	}
	return append([]byte{flags}, b...)
}

func decodeJournalEntry(v []byte) (*journalEntry, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("empty")
	}
	var p peerv1.Settlement
	if err := proto.Unmarshal(v[1:], &p); err != nil {
		return nil, err
	}
	s, err := settlementFromProto(&p)
	if err != nil {
		return nil, err
	}
	s.degraded = v[0]&entryDegraded != 0
	return &journalEntry{s: s, settled: v[0]&entrySettled != 0}, nil
}

// journalDone forgets settlements their owner has applied (or that
// record nothing), if this node keeps a journal.
func (n *Node) journalDone(ss ...*settlement) {
	if n.journal != nil {
		n.journal.done(ss...)
	}
}

// journalRecorded forgets a settlement whose usage this node has recorded
// for its ledger once that usage is committed: until then only the
// journal has it on disk.
func (n *Node) journalRecorded(s *settlement) {
	switch {
	case n.journal == nil || s.journal == 0:
	case n.raft == nil || s.usage.Failed:
		n.journal.done(s) // no ledger here, or nothing recorded
	default:
		n.usage.holdJournal(s)
	}
}

// resettle queues what a previous run's journal left: a settlement that
// had not reached its owner is sent again; a request the crash cut off is
// settled with what it had delivered by the last write, or refunded if it
// had not reached an upstream yet.
func (n *Node) resettle(left []*journalEntry) {
	if len(left) == 0 {
		return
	}
	var cut int
	for _, e := range left {
		s := e.s.clone() // the queue's own: the journal keeps e
		if s.origin != n.name {
			// Renamed since: its own number would be another node's.
			s.origin, s.seq = n.name, 0
		}
		if !e.settled {
			// Its number is the one it was admitted with, so that an
			// owner that had its settlement (the settled mark did not
			// reach the disk) skips this one.
			cut++
			s.usage.Failed = s.usage.Model == "" // never reached an upstream
		}
		n.settles.add(s)
	}
	n.log.Info("settling gateway requests a previous run left in its journal", "requests", len(left), "cut_off", cut)
}
