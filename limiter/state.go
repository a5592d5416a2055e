package limiter

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// When a tenant's ownership moves, the old owner hands its limit state to
// the new one. The hand-off may race with hits the new owner already
// admitted, and may be delivered twice, so the receiver folds it in
// conservatively: whichever side has consumed more wins, and merging never
// gives hits back.

// EntryState is the portable state of one limit of one tenant: what a node
// hands to the tenant's next owner. Times are Unix nanoseconds.
type EntryState struct {
	Limit Limit
	// Token bucket: the level consumed and not yet refilled, in
	// token·nanoseconds, as the two halves of a 128-bit integer, and the
	// time it was computed at.
	LevelHi, LevelLo uint64
	Last             int64
	// Windows and calendar months: the current window (or month) index and
	// the hits counted in it and in the one before.
	Window            int64
	Current, Previous int64
	// Concurrency: the leases held, in expiry order.
	Leases []LeaseState
}

// LeaseState is one concurrency lease; Expires is in Unix nanoseconds.
type LeaseState struct {
	ID      uint64
	Hits    int64
	Expires int64
}

// ErrInvalidState means a handed-over state holds values no store produces
// (negative counts, leases without hits, more leases than any limit allows);
// merging them could admit more than the limit.
var ErrInvalidState = errors.New("invalid limit state")

// Export returns a copy of tenant's state, or nil if the store holds none.
// It changes nothing, not even the tenant's last use.
func (s *Store) Export(tenant string) []EntryState {
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ts := sh.get(tenant, h)
	if ts == nil {
		return nil
	}
	return ts.export()
}

// Take returns tenant's state and forgets the tenant, in one step under the
// shard lock, so no hit is admitted in between and then lost: for when
// ownership moves away. It returns nil if the store holds no state.
func (s *Store) Take(tenant string) []EntryState {
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ts := sh.get(tenant, h)
	if ts == nil {
		return nil
	}
	states := ts.export()
	s.remove(sh, ts)
	return states
}

// ErrMoved means the tenant's state has been handed to another node: the
// store refuses to decide for it (rather than start it afresh) until the
// state comes back through Merge or the caller calls Unseal.
var ErrMoved = errors.New("tenant moved to another node")

// Seal is Take, and leaves the tenant sealed: Check, Reserve and Adjust
// return ErrMoved for it. Taking the state and sealing under one lock
// closes the race in which a decision already on its way here would
// otherwise start the tenant afresh.
func (s *Store) Seal(tenant string) []EntryState {
	if tenant == "" {
		return nil // no such tenant, and "" marks an empty record
	}
	now := s.now()
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ts := sh.get(tenant, h)
	var states []EntryState
	if ts == nil {
		s.makeRoom(sh, "", now)
		ts = sh.put(strings.Clone(tenant), h)
	} else {
		states = ts.export()
		s.entries.Add(-int64(ts.count()))
		s.addLeases(-ts.leaseCount())
		sh.releaseAll(ts)
	}
	ts.seen = seenAt(now)
	ts.set(sealedFlag, true)
	return states
}

// Unseal lets the store decide for tenant again, from fresh state if it
// holds none.
func (s *Store) Unseal(tenant string) {
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ts := sh.get(tenant, h); ts != nil && ts.sealed() {
		ts.set(sealedFlag, false)
		if ts.count() == 0 {
			s.remove(sh, ts)
		}
	}
}

// Merge folds states handed over from another node into tenant's state.
// For each limit the more consumed side wins, brought to the current time
// first, so merging the same state twice, or a stale one, gives no hits
// back. A limit the store does not hold is created (and counts toward
// MaxEntries); one it holds under another algorithm is left alone; one it
// holds under another definition keeps the local definition. If any state
// is invalid, Merge changes nothing and returns an error wrapping
// ErrInvalidLimit (or ErrUnknownAlgorithm) or ErrInvalidState.
func (s *Store) Merge(tenant string, states []EntryState) error {
	if err := validateStates(tenant, states); err != nil {
		return err
	}
	now := s.now()
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ts := sh.get(tenant, h); ts != nil {
		ts.set(sealedFlag, false) // the state has come (back) here
	}
	for i := range states {
		def := sharedLimit{Limit: states[i].Limit} // the incoming state's own, not the shard's
		in := states[i].entry(&def)
		// Found afresh each time: creating an entry may move the others.
		var e *entry
		if ts := sh.get(tenant, h); ts != nil {
			ts.seen = seenAt(now)
			e = ts.find(states[i].Limit.Name)
		}
		if e == nil {
			// A fresh entry is the least consumed state there is, so
			// merging into it is the same as adopting the incoming one.
			_, e = s.lookup(sh, h, tenant, &states[i].Limit, now)
		}
		if e.lim().Algorithm == in.lim().Algorithm {
			held := len(e.leases())
			e.merge(now, &in)
			s.addLeases(len(e.leases()) - held)
		}
	}
	s.changed(sh, sh.get(tenant, h))
	return nil
}

// Tenants calls fn with the name of every tenant the store holds (sealed
// ones aside), shard by shard, until fn returns false. fn runs under a
// shard lock: it must not call back into the store. Tenants added or removed meanwhile in shards
// not yet visited may or may not be seen.
func (s *Store) Tenants(fn func(tenant string) bool) {
	for i := range s.shards {
		if !s.shards[i].each(fn) {
			return
		}
	}
}

// each calls fn for the shard's tenants under its lock; false means fn
// asked to stop. The deferred unlock keeps a panicking fn from leaving the
// shard locked.
func (sh *shard) each(fn func(tenant string) bool) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i := range sh.table {
		if ts := &sh.table[i]; ts.name != "" && !ts.sealed() && !fn(ts.name) {
			return false
		}
	}
	return true
}

func (t *tenantState) export() []EntryState {
	return t.appendExport(make([]EntryState, 0, t.count()))
}

// appendExport appends t's state to dst.
func (t *tenantState) appendExport(dst []EntryState) []EntryState {
	for i := range t.count() {
		e := t.at(i)
		st := EntryState{Limit: *e.lim()}
		switch st.Limit.Algorithm {
		case TokenBucket:
			b := e.bucket()
			st.LevelHi, st.LevelLo, st.Last = b.level.hi, b.level.lo, b.last
		case Concurrency:
			// A copy: the store's slice changes under its lock after we
			// return.
			if leases := e.leases(); len(leases) > 0 {
				st.Leases = make([]LeaseState, len(leases))
				for j, l := range leases {
					st.Leases[j] = LeaseState{ID: l.id, Hits: l.hits, Expires: l.expires}
				}
			}
		default:
			w := e.window()
			st.Window, st.Current, st.Previous = w.win, w.cur, w.prev
		}
		dst = append(dst, st)
	}
	return dst
}

func validateStates(tenant string, states []EntryState) error {
	for i := range states {
		if err := states[i].validate(tenant); err != nil {
			return fmt.Errorf("states[%d]: %w", i, err)
		}
	}
	return nil
}

func (st *EntryState) validate(tenant string) error {
	if err := validate(tenant, &st.Limit, 0); err != nil {
		return err
	}
	if st.Current < 0 || st.Previous < 0 {
		return fmt.Errorf("%w: %q: negative window count (%d, %d)", ErrInvalidState, st.Limit.Name, st.Current, st.Previous)
	}
	if len(st.Leases) > MaxConcurrency {
		return fmt.Errorf("%w: %q: %d leases, at most %d", ErrInvalidState, st.Limit.Name, len(st.Leases), MaxConcurrency)
	}
	for _, l := range st.Leases {
		if l.Hits <= 0 {
			return fmt.Errorf("%w: %q: lease %d holds %d hits", ErrInvalidState, st.Limit.Name, l.ID, l.Hits)
		}
	}
	return nil
}

// entry returns the state as an entry of def, which must be st's limit, so
// that the algorithms' own refill and roll code can bring it to the
// present, and a store can keep it if def is the shard's.
func (st *EntryState) entry(def *sharedLimit) entry {
	e := entry{def: def}
	switch st.Limit.Algorithm {
	case TokenBucket:
		*e.bucket() = bucketState{level: u128{st.LevelHi, st.LevelLo}, last: st.Last}
	case Concurrency:
		if len(st.Leases) > 0 {
			leases := make([]lease, len(st.Leases))
			for i, l := range st.Leases {
				leases[i] = lease{id: l.ID, hits: l.Hits, expires: l.Expires}
			}
			e.setLeases(leases)
		}
	default:
		*e.window() = windowState{win: st.Window, cur: st.Current, prev: st.Previous}
	}
	return e
}

// merge folds in, of the same algorithm, into e at now. in is consumed.
func (e *entry) merge(now int64, in *entry) {
	switch e.lim().Algorithm {
	case TokenBucket:
		e.mergeBucket(now, in)
	case FixedWindow, SlidingWindow:
		e.roll(now)
		in.roll(now)
		w, iw := e.window(), in.window()
		if in.lim().Period != e.lim().Period {
			// Window indexes differ between periods; like reshape,
			// carry only the current count across.
			iw.prev = 0
		}
		w.cur, w.prev = max(w.cur, iw.cur), max(w.prev, iw.prev)
	case CalendarMonth:
		e.rollMonth(now)
		in.rollMonth(now)
		e.window().cur = max(e.window().cur, in.window().cur)
	case Concurrency:
		e.mergeLeases(now, in.leases())
	}
}

// mergeBucket keeps the higher of the two levels at now. An incoming level
// under another period is converted through whole tokens, rounded up, as
// reshape does. The incoming state refills at its own rate up to now.
func (e *entry) mergeBucket(now int64, in *entry) {
	level := in.bucketLevel(now)
	if in.lim().Period != e.lim().Period {
		tokens := level.divCeil(uint64(in.lim().Period))
		level = mul64(uint64(tokens), uint64(e.lim().Period))
	}
	b := e.bucket()
	b.level = e.bucketLevel(now)
	if level.cmp(b.level) > 0 {
		b.level = level
	}
	b.last = max(b.last, now)
}

// mergeLeases adds the unexpired incoming leases e does not hold yet. Lease
// ids are what later releases name, so the union is by id, which also makes
// a second merge of the same leases a no-op.
func (e *entry) mergeLeases(now int64, in []lease) {
	e.purge(now)
	leases := e.leases()
	held := make(map[uint64]bool, len(leases)+len(in))
	for _, l := range leases {
		held[l.id] = true
	}
	n := len(leases)
	for _, l := range in {
		if l.expires > now && !held[l.id] {
			held[l.id] = true
			leases = append(leases, l)
		}
	}
	if len(leases) > n {
		// Decisions and purge rely on expiry order; the stable sort
		// keeps local leases that expire together in the order taken.
		slices.SortStableFunc(leases, func(a, b lease) int { return cmp.Compare(a.expires, b.expires) })
		e.setLeases(leases)
	}
}
