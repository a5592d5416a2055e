package limiter

import (
	"math/rand/v2"
	"sync"
)

// A shard holds its tenants in an open-addressing table, found by the upper
// half of their hash with linear probing. The record itself is the slot, so
// finding a tenant costs one memory access where an index of positions
// into a separate array would cost two: at a million tenants neither fits
// in the CPU's caches, and every access that misses them costs about a
// tenth of a microsecond.
type shard struct {
	mu    sync.Mutex
	table []tenantState // len is 0 or a power of two; a record whose name is "" is empty
	used  int           // live records
	// changed lists tenants noted as changed since Changes last ran (see
	// Options.TrackChanges); a name may be stale or listed twice.
	changed []string
	_       [64]byte // two cache lines per shard: no false sharing of locks
}

type tenantState struct {
	name    string // "" marks an empty record
	hash    uint64
	seen    int64
	limits  []entry
	sealed  bool // handed to another node; see Store.Seal
	changed bool // listed in its shard's changed
}

func (sh *shard) home(h uint64) int { return int(h>>32) & (len(sh.table) - 1) }

// get returns tenant's state, or nil. The pointer is valid until the next
// put or remove in the shard, either of which may move records. The caller
// holds sh.mu.
func (sh *shard) get(tenant string, h uint64) *tenantState {
	if len(sh.table) == 0 {
		return nil
	}
	mask := len(sh.table) - 1
	for i := sh.home(h); ; i = (i + 1) & mask {
		ts := &sh.table[i]
		if ts.name == "" {
			return nil
		}
		if ts.hash == h && ts.name == tenant {
			return ts
		}
	}
}

// put adds a tenant that is not there yet and returns its state.
func (sh *shard) put(tenant string, h uint64) *tenantState {
	if (sh.used+1)*4 > len(sh.table)*3 {
		sh.grow()
	}
	ts := &sh.table[sh.free(h)]
	*ts = tenantState{name: tenant, hash: h}
	sh.used++
	return ts
}

// free returns the first empty record of h's probe sequence.
func (sh *shard) free(h uint64) int {
	mask := len(sh.table) - 1
	i := sh.home(h)
	for sh.table[i].name != "" {
		i = (i + 1) & mask
	}
	return i
}

func (sh *shard) grow() {
	old := sh.table
	sh.table = make([]tenantState, max(2*len(old), 8))
	for i := range old {
		if old[i].name != "" {
			sh.table[sh.free(old[i].hash)] = old[i]
		}
	}
}

// remove drops ts, which must be live in this shard. Records later in its
// probe run may move.
func (sh *shard) remove(ts *tenantState) {
	mask := len(sh.table) - 1
	i := sh.home(ts.hash)
	for &sh.table[i] != ts {
		i = (i + 1) & mask
	}
	// Backward-shift deletion: pull later records of the same probe run
	// into the hole unless that would move them before their home.
	for j := i; ; {
		j = (j + 1) & mask
		if sh.table[j].name == "" {
			break
		}
		k := sh.home(sh.table[j].hash)
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
