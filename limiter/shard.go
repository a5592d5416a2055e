package limiter

import (
	"math/rand/v2"
	"sync"
)

// A shard holds its tenants in a slab and finds them through an
// open-addressing index of 8-byte slots: the upper half of a slot is the
// upper half of the tenant's hash, the lower half its slab position plus
// one (zero marks an empty slot). A million tenants fit the index in 16 MiB,
// within a server's last-level cache, where Go's map of pointers would take
// several times that and miss to memory on most lookups.
type shard struct {
	mu    sync.Mutex
	slots []uint64
	slab  []tenantState
	free  []uint32
	used  int      // occupied slots, = live tenants
	_     [40]byte // two cache lines per shard: no false sharing of locks
}

type tenantState struct {
	name   string // "" marks a free slab position
	hash   uint64
	seen   int64
	limits []entry
	sealed bool // handed to another node; see Store.Seal
}

const tagMask = uint64(0xffffffff) << 32

func (sh *shard) home(tag uint64) int { return int(tag>>32) & (len(sh.slots) - 1) }

// get returns tenant's state, or nil. The pointer is valid until the next
// put. The caller holds sh.mu.
func (sh *shard) get(tenant string, h uint64) *tenantState {
	if len(sh.slots) == 0 {
		return nil
	}
	tag, mask := h&tagMask, len(sh.slots)-1
	for i := sh.home(tag); ; i = (i + 1) & mask {
		s := sh.slots[i]
		if s == 0 {
			return nil
		}
		if s&tagMask == tag {
			if ts := &sh.slab[uint32(s)-1]; ts.name == tenant {
				return ts
			}
		}
	}
}

// put adds a tenant that is not there yet and returns its state.
func (sh *shard) put(tenant string, h uint64) *tenantState {
	if (sh.used+1)*4 > len(sh.slots)*3 {
		sh.grow()
	}
	var pos uint32
	if n := len(sh.free); n > 0 {
		pos, sh.free = sh.free[n-1], sh.free[:n-1]
	} else {
		pos = uint32(len(sh.slab))
		sh.slab = append(sh.slab, tenantState{})
	}
	sh.slab[pos] = tenantState{name: tenant, hash: h}
	sh.insert(h&tagMask | uint64(pos+1))
	sh.used++
	return &sh.slab[pos]
}

func (sh *shard) insert(slot uint64) {
	mask := len(sh.slots) - 1
	i := sh.home(slot)
	for sh.slots[i] != 0 {
		i = (i + 1) & mask
	}
	sh.slots[i] = slot
}

func (sh *shard) grow() {
	old := sh.slots
	sh.slots = make([]uint64, max(2*len(old), 16))
	for _, s := range old {
		if s != 0 {
			sh.insert(s)
		}
	}
}

// remove drops ts, which must be live in this shard.
func (sh *shard) remove(ts *tenantState) {
	mask := len(sh.slots) - 1
	tag := ts.hash & tagMask
	i := sh.home(tag)
	for &sh.slab[uint32(sh.slots[i])-1] != ts {
		i = (i + 1) & mask
	}
	pos := uint32(sh.slots[i]) - 1
	// Backward-shift deletion: pull later slots of the same probe run into
	// the hole unless that would move them before their home.
	for j := i; ; {
		j = (j + 1) & mask
		s := sh.slots[j]
		if s == 0 {
			break
		}
		k := sh.home(s)
		if (i <= j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		sh.slots[i], i = s, j
	}
	sh.slots[i] = 0
	sh.used--
	sh.slab[pos] = tenantState{}
	sh.free = append(sh.free, pos)
}

// sample visits up to n distinct live tenants: those that follow a random
// position of the slab, so the sample is spread over the shard and a
// shard of n or fewer tenants is visited whole.
func (sh *shard) sample(n int, visit func(*tenantState)) {
	size := len(sh.slab)
	if sh.used == 0 {
		return
	}
	start := rand.IntN(size)
	for i := 0; i < size && n > 0; i++ {
		if ts := &sh.slab[(start+i)%size]; ts.name != "" {
			visit(ts)
			n--
		}
	}
}
