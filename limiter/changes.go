package limiter

import "strings"

// A store with Options.TrackChanges notes which tenants' state changed, so
// that their owner can copy it to a replica on another node now and then,
// and a replica store takes the copies with Replace. Noting costs a flag in
// the tenant's record, which the decision has in cache already, and an
// append the first time a tenant changes between two collections.

// changed notes that ts's state changed; the caller holds sh.mu.
func (s *Store) changed(sh *shard, ts *tenantState) {
	if s.note(sh, ts) && s.changes.Add(1)%s.changeBatch == 0 && s.onBatch != nil {
		s.onBatch()
	}
}

// note lists ts as changed unless it is listed, and reports whether it
// listed it; the caller holds sh.mu.
func (s *Store) note(sh *shard, ts *tenantState) bool {
	if !s.track || ts == nil || ts.changed() {
		return false
	}
	ts.set(changedFlag, true)
	sh.changed = append(sh.changed, ts.name)
	return true
}

// MarkChanged notes tenant as changed, so that the next Changes hands its
// state over again (a copy that did not land, or that has a new replica
// to go to). It does not call OnChangeBatch: what it notes again waits
// for the next regular collection.
func (s *Store) MarkChanged(tenant string) {
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ts := sh.get(tenant, h); ts != nil && !ts.sealed() && s.note(sh, ts) {
		s.changes.Add(1)
	}
}

// Sealed reports whether tenant is sealed (see Seal).
func (s *Store) Sealed(tenant string) bool {
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return s.sealed(sh, h, tenant)
}

// PendingChanges returns how many tenants are noted as changed and not
// yet collected by Changes.
func (s *Store) PendingChanges() int { return int(s.changes.Load()) }

// Changes calls fn with the current state of every tenant noted as
// changed since the last call, shard by shard, and forgets the notes. A
// tenant that has gone or been sealed since is left out. fn runs outside
// the store's locks; states is valid only until it returns (the next
// tenant's reuse it).
func (s *Store) Changes(fn func(tenant string, states []EntryState)) {
	type change struct {
		tenant     string
		start, end int // in flat
	}
	var batch []change
	var flat []EntryState
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		names := sh.changed
		sh.changed = nil
		batch, flat = batch[:0], flat[:0]
		for _, name := range names {
			ts := sh.get(name, s.hashOf(name))
			if ts == nil || !ts.changed() {
				continue // gone, or listed twice
			}
			ts.set(changedFlag, false)
			if !ts.sealed() {
				start := len(flat)
				flat = ts.appendExport(flat)
				batch = append(batch, change{name, start, len(flat)})
			}
		}
		sh.mu.Unlock()
		s.changes.Add(-int64(len(names)))
		for _, c := range batch {
			fn(c.tenant, flat[c.start:c.end:c.end])
		}
	}
}

func (s *Store) hashOf(tenant string) uint64 {
	_, h := s.hash(tenant)
	return h
}

// Replace sets tenant's state to states, dropping whatever the store held
// for it: for a replica, which holds the latest copy its owner sent. If any
// state is invalid, Replace changes nothing and returns an error as Merge
// does.
func (s *Store) Replace(tenant string, states []EntryState) error {
	if err := validateStates(tenant, states); err != nil {
		return err
	}
	now := s.now()
	sh, h := s.hash(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ts := sh.get(tenant, h); ts != nil {
		s.remove(sh, ts)
	}
	if len(states) == 0 {
		return nil
	}
	s.makeRoom(sh, "", now)
	ts := sh.put(strings.Clone(tenant), h)
	ts.seen = seenAt(now)
	for i := range states {
		if ts.find(states[i].Limit.Name) != nil {
			continue // one state per limit; a second is a sender's bug
		}
		e := ts.add(states[i].entry(sh.intern(states[i].Limit)))
		s.addLeases(len(e.leases()))
	}
	s.entries.Add(int64(ts.count()))
	s.changed(sh, ts)
	return nil
}
