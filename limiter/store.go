package limiter

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure a Store. Zero fields take the defaults below.
type Options struct {
	// Clock is the time source; a SystemClock by default.
	Clock Clock
	// Shards is the number of independently locked shards, rounded up to a
	// power of two; 256 by default.
	Shards int
	// MaxEntries caps the limit entries held (tenant × limit name); a new
	// entry beyond it evicts a tenant from the same shard, preferring one
	// whose limits are back to full, else the least recently used of a few
	// sampled. 1,048,576 by default.
	MaxEntries int
	// IdleTTL is how long a tenant must go unused before Sweep may forget
	// it, and then only once every limit is back to full. 10 minutes by
	// default.
	IdleTTL time.Duration
	// MaxLeases caps the concurrency leases held across all tenants (each
	// lease costs ~24 bytes); a lease beyond it is refused with
	// ErrTooManyLeases. Expired leases count until their entry is next
	// touched or swept. 4,194,304 by default.
	MaxLeases int
	// TrackChanges makes the store note the tenants whose state changes
	// (admitted, settled, merged), for Changes to hand to a replica.
	TrackChanges bool
	// ChangeBatch and OnChangeBatch: with TrackChanges, OnChangeBatch is
	// called each time ChangeBatch more tenants have changed since Changes
	// last ran (1,000 by default), so a replicator can run early. It runs
	// under a shard lock: it must not block or call back into the store.
	ChangeBatch   int
	OnChangeBatch func()
}

// ErrTooManyLeases refuses a concurrency lease when the store holds
// MaxLeases already; nothing of the request is taken.
var ErrTooManyLeases = errors.New("too many concurrency leases held on this node")

// Store holds the limit state of many tenants. All limits of one tenant
// live in one shard under one lock, which makes a multi-limit reservation
// atomic. Safe for concurrent use.
type Store struct {
	clock      Clock
	sys        *SystemClock // clock, when it is the real one: read without an interface call
	seed       maphash.Seed
	mask       uint64
	shards     []shard
	maxEntries int64
	entries    atomic.Int64
	maxLeases  int64
	leases     atomic.Int64 // held by concurrency entries, expired ones until purged
	refusals   atomic.Uint64
	idleTTL    int64
	evictions  atomic.Uint64

	track       bool
	changes     atomic.Int64 // tenants noted as changed and not yet collected
	changeBatch int64
	onBatch     func()
}

// evictionSample is how many tenants an eviction compares; Redis's
// approximated LRU shows five is close to exact LRU at a fraction of the cost.
const evictionSample = 5

// NewStore returns an empty store.
func NewStore(opts Options) *Store {
	if opts.Clock == nil {
		opts.Clock = NewSystemClock()
	}
	if opts.Shards <= 0 {
		opts.Shards = 256
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 1 << 20
	}
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = 10 * time.Minute
	}
	if opts.MaxLeases <= 0 {
		opts.MaxLeases = 1 << 22
	}
	if opts.ChangeBatch <= 0 {
		opts.ChangeBatch = 1000
	}
	// A small store gets fewer shards, so each holds enough tenants to
	// choose an eviction victim from.
	shards := min(opts.Shards, max(opts.MaxEntries/16, 1))
	n := 1
	for n < shards {
		n <<= 1
	}
	s := &Store{
		clock:      opts.Clock,
		seed:       maphash.MakeSeed(),
		mask:       uint64(n - 1),
		shards:     make([]shard, n),
		maxEntries: int64(opts.MaxEntries),
		maxLeases:  int64(opts.MaxLeases),
		idleTTL:    int64(opts.IdleTTL),

		track:       opts.TrackChanges,
		changeBatch: int64(opts.ChangeBatch),
		onBatch:     opts.OnChangeBatch,
	}
	s.sys, _ = opts.Clock.(*SystemClock)
	return s
}

func (s *Store) hash(tenant string) (*shard, uint64) {
	h := maphash.String(s.seed, tenant)
	return &s.shards[h&s.mask], h
}

func (s *Store) now() int64 {
	if s.sys != nil {
		return s.sys.UnixNano()
	}
	return max(s.clock.Now().UnixNano(), 0)
}

// Check consumes hits from one limit of tenant if it allows them. Hits of 0
// peek without consuming.
func (s *Store) Check(tenant string, lim Limit, hits int64) (Result, error) {
	if err := validate(tenant, &lim, hits); err != nil {
		return Result{}, err
	}
	if s.leasesFull(&lim, hits) {
		return Result{}, ErrTooManyLeases
	}
	now := s.now()
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	ts, e := s.lookup(sh, h, tenant, &lim, now)
	if e == nil {
		sh.mu.Unlock()
		return Result{}, ErrMoved
	}
	held := len(e.leases())
	var r Result
	e.decide(now, hits, &r)
	if r.Allowed {
		r.Lease = s.take(e, now, hits)
		if hits > 0 {
			s.changed(sh, ts)
		}
	}
	s.addLeases(len(e.leases()) - held)
	sh.mu.Unlock()
	return r, nil
}

// Reserve consumes every request's hits from tenant's limits if all of them
// allow it, and nothing otherwise. It writes one Result per request into
// out, which must be at least as long as reqs, and reports whether the
// reservation was admitted. Limit names must be distinct.
func (s *Store) Reserve(tenant string, reqs []Request, out []Result) (bool, error) {
	if len(out) < len(reqs) {
		return false, fmt.Errorf("%w: %d results for %d requests", ErrInvalidLimit, len(out), len(reqs))
	}
	for i := range reqs {
		if err := validate(tenant, &reqs[i].Limit, reqs[i].Hits); err != nil {
			return false, fmt.Errorf("limits[%d]: %w", i, err)
		}
		for j := range i {
			if reqs[j].Limit.Name == reqs[i].Limit.Name {
				return false, fmt.Errorf("%w: limits[%d].name: %q appears twice", ErrInvalidLimit, i, reqs[i].Limit.Name)
			}
		}
	}
	conc := false // only concurrency limits hold leases
	for i := range reqs {
		if s.leasesFull(&reqs[i].Limit, reqs[i].Hits) {
			return false, ErrTooManyLeases
		}
		conc = conc || reqs[i].Limit.Algorithm == Concurrency
	}
	now := s.now()
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	allowed := true
	held := 0 // leases of the requested entries before deciding
	for i := range reqs {
		_, e := s.lookup(sh, h, tenant, &reqs[i].Limit, now)
		if e == nil {
			return false, ErrMoved // sealed: so at the first lookup, before any decision
		}
		held += len(e.leases())
		e.decide(now, reqs[i].Hits, &out[i])
		allowed = allowed && out[i].Allowed
	}
	// Looked up again rather than kept: a lookup above may have evicted
	// a tenant, which moves records, or grown the tenant's limits.
	ts := sh.get(tenant, h)
	if allowed {
		for i := range reqs {
			out[i].Lease = s.take(ts.find(reqs[i].Limit.Name), now, reqs[i].Hits)
		}
		s.changed(sh, ts)
	}
	if conc {
		s.addLeases(s.leasesOf(ts, reqs) - held)
	}
	return allowed, nil
}

// Adjust settles earlier reservations of tenant. Charges create the entry if
// it has gone; refunds and releases of entries that have gone are dropped.
func (s *Store) Adjust(tenant string, adjs []Adjustment) error {
	for i := range adjs {
		if err := validate(tenant, &adjs[i].Limit, 0); err != nil {
			return fmt.Errorf("adjustments[%d]: %w", i, err)
		}
	}
	now := s.now()
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.sealed(sh, h, tenant) {
		return ErrMoved
	}
	for i := range adjs {
		a := &adjs[i]
		var e *entry
		if ts := sh.get(tenant, h); ts != nil {
			e = ts.find(a.Limit.Name)
		}
		switch {
		case e == nil && a.Delta > 0:
			// The entry has gone (evicted, or forgotten at rest): a charge
			// still counts.
			_, e = s.lookup(sh, h, tenant, &a.Limit, now)
		case e == nil || e.lim().Algorithm != a.Limit.Algorithm:
			// Nothing to refund or release; a settlement never reshapes
			// or resets a limit it does not match.
			continue
		}
		held := len(e.leases())
		e.adjust(now, a)
		s.addLeases(len(e.leases()) - held)
	}
	s.changed(sh, sh.get(tenant, h))
	return nil
}

func (s *Store) sealed(sh *shard, h uint64, tenant string) bool {
	ts := sh.get(tenant, h)
	return ts != nil && ts.sealed()
}

func (s *Store) take(e *entry, now, hits int64) uint64 {
	var id uint64
	if e.lim().Algorithm == Concurrency && hits > 0 {
		id = newLeaseID()
	}
	e.take(now, hits, id)
	return id
}

// newLeaseID draws a lease id from crypto/rand: whoever holds one lease
// cannot guess another's to release it, and ids from before a restart do
// not release leases taken after it. Never 0, which means no lease.
func newLeaseID() uint64 {
	var b [8]byte
	for {
		_, _ = crand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

func validate(tenant string, lim *Limit, hits int64) error {
	if tenant == "" {
		return fmt.Errorf("%w: tenant: must not be empty", ErrInvalidLimit)
	}
	if hits < 0 {
		return fmt.Errorf("%w: must be >= 0, got %d", ErrInvalidHits, hits)
	}
	return lim.Validate()
}

// lookup returns tenant's state and its entry for lim, creating them (and
// evicting to make room) if need be, or nil if the tenant is sealed. The
// caller holds sh.mu; the pointers are valid until the shard's next put or
// remove, or the tenant's next new entry.
func (s *Store) lookup(sh *shard, h uint64, tenant string, lim *Limit, now int64) (*tenantState, *entry) {
	ts := sh.get(tenant, h)
	if ts != nil && ts.sealed() {
		return nil, nil
	}
	if ts == nil {
		s.makeRoom(sh, "", now)
		ts = sh.put(strings.Clone(tenant), h)
	}
	ts.seen = seenAt(now)
	if e := ts.find(lim.Name); e != nil {
		if !e.lim().sameShape(lim) {
			held := len(e.leases())
			sh.release(e.reshape(now, sh.intern(*lim)))
			s.addLeases(len(e.leases()) - held)
		}
		return ts, e
	}
	if ts.count() > 0 {
		s.makeRoom(sh, tenant, now)
		ts = sh.get(tenant, h) // an eviction may have moved it
	}
	s.entries.Add(1)
	return ts, ts.add(entry{def: sh.intern(*lim)})
}

// makeRoom evicts while the store is full, from sh if it holds another
// tenant than keep ("": any), else from another shard whose lock is free (never
// waiting on one: two writers evicting from each other's shards would
// deadlock). If nothing can be evicted the store runs over for now.
func (s *Store) makeRoom(sh *shard, keep string, now int64) {
	for s.entries.Load() >= s.maxEntries {
		if s.evictFrom(sh, keep, now) {
			continue
		}
		evicted := false
		for range 4 {
			other := &s.shards[rand.IntN(len(s.shards))]
			if other == sh || !other.mu.TryLock() {
				continue
			}
			evicted = s.evictFrom(other, "", now)
			other.mu.Unlock()
			if evicted {
				break
			}
		}
		if !evicted {
			return
		}
	}
}

// evictFrom evicts one of a few tenants sampled from sh, other than keep:
// one whose limits are all back to full if there is one (forgetting it
// changes no decision), else the least recently seen. The caller holds
// sh.mu.
func (s *Store) evictFrom(sh *shard, keep string, now int64) bool {
	var victim *tenantState
	victimRested := false
	sh.sample(evictionSample, func(ts *tenantState) {
		if ts.name == keep || ts.sealed() {
			return // a sealed tenant's marker keeps it from starting afresh
		}
		rested := ts.atRest(now)
		if victim == nil || (rested && !victimRested) || (rested == victimRested && ts.seen < victim.seen) {
			victim, victimRested = ts, rested
		}
	})
	if victim == nil {
		return false
	}
	s.evictions.Add(uint64(victim.count()))
	s.remove(sh, victim)
	return true
}

func (s *Store) remove(sh *shard, ts *tenantState) {
	s.entries.Add(-int64(ts.count()))
	s.addLeases(-ts.leaseCount())
	sh.remove(ts)
}

// leasesFull reports whether a request for hits of lim would take a lease
// beyond MaxLeases.
func (s *Store) leasesFull(lim *Limit, hits int64) bool {
	if lim.Algorithm != Concurrency || hits <= 0 || s.leases.Load() < s.maxLeases {
		return false
	}
	s.refusals.Add(1)
	return true
}

// addLeases counts d leases more (or fewer) held; nothing to count, the
// common case, costs no atomic write.
func (s *Store) addLeases(d int) {
	if d != 0 {
		s.leases.Add(int64(d))
	}
}

// leasesOf counts the leases ts holds in the entries reqs name.
func (s *Store) leasesOf(ts *tenantState, reqs []Request) int {
	n := 0
	for i := range reqs {
		if e := ts.find(reqs[i].Limit.Name); e != nil {
			n += len(e.leases())
		}
	}
	return n
}

// leaseCount counts the leases t holds, expired ones not yet purged too.
func (t *tenantState) leaseCount() int {
	n := 0
	for i := range t.count() {
		n += len(t.at(i).leases())
	}
	return n
}

// Leases returns the number of concurrency leases held (expired ones
// count until their entry is next touched or swept).
func (s *Store) Leases() int { return int(s.leases.Load()) }

// LeaseRefusals returns how many requests were refused with
// ErrTooManyLeases.
func (s *Store) LeaseRefusals() uint64 { return s.refusals.Load() }

// sweepStride is how many records Sweep looks at under one hold of a
// shard's lock: a check arriving meanwhile waits a fraction of a
// microsecond, spinning, where a whole shard's scan held it ~100µs and
// put it to sleep (BenchmarkSweepTail: p99.9 of a check 129µs → 7–10µs
// while sweeps run without pause). The strides cost a sweep 5% more time.
const sweepStride = 4

// Sweep forgets tenants that have been idle for IdleTTL and whose limits are
// all back to full, and returns how many it forgot. Run it periodically. It
// takes each shard's lock for sweepStride records at a time; a record that
// moves between two holds (others come and go meanwhile) may be missed,
// and is forgotten by the next sweep.
func (s *Store) Sweep() int {
	now := s.now()
	removed := 0
	for i := range s.shards {
		sh := &s.shards[i]
		for j := 0; ; {
			sh.mu.Lock()
			if j >= len(sh.table) {
				sh.mu.Unlock()
				break
			}
			for end := j + sweepStride; j < min(end, len(sh.table)); {
				ts := &sh.table[j]
				if ts.name != "" && !ts.sealed() && ts.idleFor(now) >= s.idleTTL && ts.atRest(now) {
					s.remove(sh, ts)
					removed++
					continue // a later record may have moved here
				}
				s.purgeLeases(ts, now)
				j++
			}
			sh.mu.Unlock()
		}
	}
	return removed
}

// purgeLeases drops ts's expired leases, so that they no longer count
// toward MaxLeases.
func (s *Store) purgeLeases(ts *tenantState, now int64) {
	for i := range ts.count() {
		if e := ts.at(i); len(e.leases()) > 0 {
			held := len(e.leases())
			e.purge(now)
			s.addLeases(len(e.leases()) - held)
		}
	}
}

func (t *tenantState) atRest(now int64) bool {
	for i := range t.count() {
		if t.at(i).restAt() > now {
			return false
		}
	}
	return true
}

// Len returns the number of limit entries held.
func (s *Store) Len() int { return int(s.entries.Load()) }

// Evictions returns how many entries were evicted to respect MaxEntries.
func (s *Store) Evictions() uint64 { return s.evictions.Load() }
