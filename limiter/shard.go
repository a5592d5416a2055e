package limiter

import (
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// A shard holds its tenants in an open-addressing table, found by their
// tag (see tagOf) with linear probing. The record itself is the slot, and
// it holds the tenant's first limit inline, so a check of a tenant's first
// limit reads one record, one cache line, where an index into a separate
// array of records, and the records' own slices of limits, would cost two
// or three accesses: at a million tenants none of it fits in the CPU's
// caches, and every access that misses them costs more than a tenth of a
// microsecond.
//
// A record is 64 bytes, and a table past 32 KiB is page-aligned (the Go
// allocator's large objects), so each record is exactly one cache line.
// The table grows by a quarter when it would be more than 70% full, so it
// stays 56–70% full: about 100 bytes of table per tenant, besides its
// name. Fuller tables probe further, each probe one more line (at 64–80%
// a lookup read 2.7 records on average, at 56–70% 1.7–2.0). The table's
// length is any number, not a power of two (which would leave it half
// empty after each doubling): a hash maps to a slot by multiplication,
// not by masking.
type shard struct {
	mu    sync.Mutex
	table []tenantState // a record whose name is "" is empty
	used  int           // live records
	// changed lists tenants noted as changed since Changes last ran (see
	// Options.TrackChanges); a name may be stale or listed twice.
	changed []string
	limits  map[Limit]*sharedLimit // see intern
	_       [56]byte               // 128 bytes, two cache lines, per shard: no false sharing of locks
}

// sharedLimit is a limit definition the shard's entries share, and how
// many of them do; or a concurrency entry's own, with its leases.
type sharedLimit struct {
	Limit
	refs int
	held []lease // a concurrency entry's leases, in expiry order
}

// intern returns the shard's copy of l, for one more entry to use: the
// tenants of a plan hold one copy of each of its limits between them, not
// one each, and an entry reads it by pointer. A concurrency limit's copy
// is not shared, as it holds the entry's leases: so the entry has no field
// that only the few concurrency entries would use. The caller holds sh.mu
// and gives the copy back with release when the entry goes or is
// reshaped.
func (sh *shard) intern(l Limit) *sharedLimit {
	if l.Algorithm == Concurrency {
		l.Name = strings.Clone(l.Name)
		return &sharedLimit{Limit: l, refs: 1}
	}
	d := sh.limits[l]
	if d == nil {
		if sh.limits == nil {
			sh.limits = make(map[Limit]*sharedLimit)
		}
		l.Name = strings.Clone(l.Name)
		d = &sharedLimit{Limit: l}
		sh.limits[l] = d
	}
	d.refs++
	return d
}

// release gives back a copy intern handed out; the last one out forgets
// the definition. A definition forgotten while an entry still points to it
// (which a bug in counting would do) is only interned afresh: entries
// compare definitions by value.
func (sh *shard) release(d *sharedLimit) {
	if d.refs--; d.refs <= 0 && sh.limits[d.Limit] == d {
		delete(sh.limits, d.Limit)
	}
}

// releaseAll gives back the definitions of t's limits and forgets them.
func (sh *shard) releaseAll(t *tenantState) {
	for i := range t.count() {
		sh.release(t.at(i).def)
	}
	t.first, t.more = entry{}, nil
}

// tenantState is a tenant's record, 64 bytes: one cache line of the
// table (see shard).
type tenantState struct {
	name  string   // "" marks an empty record
	meta  uint32   // the tag (see tagOf), and the flags in the bits it leaves
	seen  uint32   // when last used, in Unix seconds (see seenAt)
	first entry    // the first limit; empty while the tenant has none
	more  *[]entry // the limits after the first, if any
}

// The flags a record keeps in the low bits of meta.
const (
	sealedFlag  uint32 = 1 << iota // handed to another node; see Store.Seal
	changedFlag                    // listed in its shard's changed
	flagBits    = sealedFlag | changedFlag
)

// tagOf is the part of a tenant's hash its record keeps, where its probe
// run starts: the upper half but for the flags' bits. The lower half chose
// the shard.
func tagOf(h uint64) uint32 { return uint32(h>>32) &^ flagBits }

func (t *tenantState) tag() uint32   { return t.meta &^ flagBits }
func (t *tenantState) sealed() bool  { return t.meta&sealedFlag != 0 }
func (t *tenantState) changed() bool { return t.meta&changedFlag != 0 }

// set sets or clears flag.
func (t *tenantState) set(flag uint32, on bool) {
	if on {
		t.meta |= flag
	} else {
		t.meta &^= flag
	}
}

// seenAt is now as a record keeps it. Whole seconds are enough for what
// reads it: which of a few tenants was used least recently, and whether
// one has been idle for IdleTTL (see idleFor).
func seenAt(now int64) uint32 { return uint32(max(now, 0) / int64(time.Second)) }

// idleFor is how long t has gone unused at now, never more than it has:
// the seconds since it was seen, less the one its use may have ended.
func (t *tenantState) idleFor(now int64) int64 {
	return (int64(seenAt(now)) - int64(t.seen) - 1) * int64(time.Second)
}

// home is where tag's probe run starts: tag scaled to the table's length.
func (sh *shard) home(tag uint32) int { return int(uint64(tag) * uint64(len(sh.table)) >> 32) }

// next is the slot after i, wrapping around.
func (sh *shard) next(i int) int {
	if i++; i == len(sh.table) {
		return 0
	}
	return i
}

// get returns tenant's state, or nil. The pointer is valid until the next
// put or remove in the shard, either of which may move records. The caller
// holds sh.mu.
func (sh *shard) get(tenant string, h uint64) *tenantState {
	if len(sh.table) == 0 {
		return nil
	}
	tag := tagOf(h)
	for i := sh.home(tag); ; i = sh.next(i) {
		ts := &sh.table[i]
		if ts.name == "" {
			return nil
		}
		if ts.tag() == tag && ts.name == tenant {
			return ts
		}
	}
}

// put adds a tenant that is not there yet and returns its state.
func (sh *shard) put(tenant string, h uint64) *tenantState {
	if (sh.used+1)*10 > len(sh.table)*7 {
		sh.grow()
	}
	tag := tagOf(h)
	ts := &sh.table[sh.free(tag)]
	*ts = tenantState{name: tenant, meta: tag}
	sh.used++
	return ts
}

// free returns the first empty record of tag's probe run.
func (sh *shard) free(tag uint32) int {
	i := sh.home(tag)
	for sh.table[i].name != "" {
		i = sh.next(i)
	}
	return i
}

func (sh *shard) grow() {
	old := sh.table
	sh.table = make([]tenantState, max(len(old)+len(old)/4, 8))
	for i := range old {
		if old[i].name != "" {
			sh.table[sh.free(old[i].tag())] = old[i]
		}
	}
}

// remove drops ts, which must be live in this shard. Records later in its
// probe run may move.
func (sh *shard) remove(ts *tenantState) {
	sh.releaseAll(ts)
	i := sh.home(ts.tag())
	for &sh.table[i] != ts {
		i = sh.next(i)
	}
	// Backward-shift deletion: pull later records of the same probe run
	// into the hole unless that would move them before their home.
	for j := i; ; {
		j = sh.next(j)
		if sh.table[j].name == "" {
			break
		}
		k := sh.home(sh.table[j].tag())
		if (i <= j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		sh.table[i], i = sh.table[j], j
	}
	sh.table[i] = tenantState{}
	sh.used--
}

// sample visits up to n distinct live tenants: those that follow a random
// record of the table, so the sample is spread over the shard and a shard
// of n or fewer tenants is visited whole. visit must not change the shard.
func (sh *shard) sample(n int, visit func(*tenantState)) {
	size := len(sh.table)
	if sh.used == 0 {
		return
	}
	start := rand.IntN(size)
	for i := 0; i < size && n > 0; i++ {
		if ts := &sh.table[(start+i)%size]; ts.name != "" {
			visit(ts)
			n--
		}
	}
}

// count returns how many limits t holds.
func (t *tenantState) count() int {
	switch {
	case t.first.empty():
		return 0
	case t.more == nil:
		return 1
	}
	return 1 + len(*t.more)
}

// at returns t's i-th limit, i < count. The pointer is valid until the
// record moves (see get) or the tenant's next new limit.
func (t *tenantState) at(i int) *entry {
	if i == 0 {
		return &t.first
	}
	return &(*t.more)[i-1]
}

// find returns t's limit called name, or nil.
func (t *tenantState) find(name string) *entry {
	if t.first.empty() {
		return nil
	}
	if t.first.lim().Name == name {
		return &t.first
	}
	if t.more != nil {
		for i := range *t.more {
			if e := &(*t.more)[i]; e.lim().Name == name {
				return e
			}
		}
	}
	return nil
}

// add gives t another limit and returns it.
func (t *tenantState) add(e entry) *entry {
	if t.first.empty() {
		t.first = e
		return &t.first
	}
	if t.more == nil {
		t.more = new([]entry)
	}
	*t.more = append(*t.more, e)
	return &(*t.more)[len(*t.more)-1]
}
