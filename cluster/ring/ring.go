package ring

import "slices"

// Ring maps tenants to owner nodes by rendezvous (highest random weight)
// hashing: every node scores the tenant and the highest score owns it. Unlike
// a token ring it needs no virtual nodes for balance, and a join or leave
// moves only the tenants that the joining or leaving node wins or held.
//
// A Ring is immutable: membership changes build a new one, which callers swap
// in atomically (atomic.Pointer[Ring]), so lookups take no lock. The zero
// Ring is empty.
type Ring struct {
	nodes []string // sorted, unique; ties go to the earlier (smaller) name
	// seeds[i] is nodeSeed(nodes[i]), so the default path hashes the tenant
	// once per lookup and each node costs one mix.
	seeds []uint64
	hash  HashFunc // nil: the precomputed DefaultHash path
}

// HashFunc scores a (node, tenant) pair; the highest score owns the tenant.
// It must be the same on every node (no per-process random seeds), or nodes
// would disagree on owners.
type HashFunc func(node, tenant string) uint64

// New returns a ring over the named nodes. Order and duplicates do not
// matter: names are sorted and deduplicated, so every node that sees the
// same members builds the same ring. Empty names are dropped, because Owner
// returns "" to mean "no owner". hash nil means DefaultHash.
func New(nodes []string, hash HashFunc) *Ring {
	names := slices.Clone(nodes) // the caller may reuse its slice
	names = slices.DeleteFunc(names, func(n string) bool { return n == "" })
	slices.Sort(names)
	names = slices.Compact(names)
	r := &Ring{nodes: slices.Clip(names), hash: hash}
	if hash == nil {
		r.seeds = make([]uint64, len(names))
		for i, n := range names {
			r.seeds[i] = nodeSeed(n)
		}
	}
	return r
}

// Owner returns the node that owns tenant, or "" for an empty ring. It does
// not allocate: it runs on every check.
func (r *Ring) Owner(tenant string) string {
	if r.hash != nil {
		return r.ownerBy(tenant)
	}
	th := fnv1a(tenant)
	best, bestScore := -1, uint64(0)
	for i, seed := range r.seeds {
		// Strictly greater: on a tie the earlier (smaller) name keeps it.
		if s := fmix64(seed ^ th); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ""
	}
	return r.nodes[best]
}

// ownerBy is Owner with an injected HashFunc.
func (r *Ring) ownerBy(tenant string) string {
	best, bestScore := "", uint64(0)
	for _, n := range r.nodes {
		if s := r.hash(n, tenant); best == "" || s > bestScore {
			best, bestScore = n, s
		}
	}
	return best
}

// Nodes returns the members in sorted order. The slice is a copy, so the
// caller cannot change the ring through it.
func (r *Ring) Nodes() []string { return slices.Clone(r.nodes) }

// Len returns the number of members.
func (r *Ring) Len() int { return len(r.nodes) }

// Contains reports whether node is a member.
func (r *Ring) Contains(node string) bool {
	_, ok := slices.BinarySearch(r.nodes, node)
	return ok
}

// Without returns a ring without node, with the same hash; used when a node
// leaves gracefully. If node is not a member it returns r, which is safe
// because rings are immutable.
func (r *Ring) Without(node string) *Ring {
	if !r.Contains(node) {
		return r
	}
	rest := slices.DeleteFunc(r.Nodes(), func(n string) bool { return n == node })
	return New(rest, r.hash)
}

// With returns a ring that also holds node, with the same hash. If node is
// already a member (or empty) it returns r.
func (r *Ring) With(node string) *Ring {
	if node == "" || r.Contains(node) {
		return r
	}
	return New(append(r.Nodes(), node), r.hash)
}

// DefaultHash scores node for tenant. It is mix(nodeSeed(node) ^
// FNV-1a(tenant)) rather than one hash over both strings so that a ring can
// hash each node name once and each tenant once per lookup. FNV-1a keeps it
// allocation-free; the murmur3 finalizer gives the avalanche FNV lacks on
// short, similar names ("tenant-1", "tenant-2"). It is pinned by golden
// values in the tests: changing it moves tenants between versions.
func DefaultHash(node, tenant string) uint64 {
	return fmix64(nodeSeed(node) ^ fnv1a(tenant))
}

// nodeSeed is finalized on its own so that node seeds differ in every bit,
// not only in the low bits where names like "node-1" and "node-2" differ.
func nodeSeed(node string) uint64 { return fmix64(fnv1a(node)) }

// fnv1a is FNV-1a 64 over the bytes of s, written out because hash/fnv
// needs a []byte and an interface, which would allocate per lookup.
func fnv1a(s string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	return h
}

// fmix64 is murmur3's 64-bit finalizer: a bijection in which every input bit
// affects every output bit.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
