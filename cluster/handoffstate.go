package cluster

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/limiter"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// A tenant's limiter state as the hand-off carries it between nodes.

func tenantStateToProto(tenant string, states []limiter.EntryState) *peerv1.TenantState {
	out := &peerv1.TenantState{Tenant: tenant, Entries: make([]*peerv1.EntryState, len(states))}
	for i, s := range states {
		e := &peerv1.EntryState{
			Limit: quotapb.LimitToProto(s.Limit), LevelHi: s.LevelHi, LevelLo: s.LevelLo, LastUnixNano: s.Last,
			Window: s.Window, Current: s.Current, Previous: s.Previous,
		}
		for _, l := range s.Leases {
			e.Leases = append(e.Leases, &peerv1.Lease{Id: l.ID, Hits: l.Hits, ExpiresUnixNano: l.Expires})
		}
		out.Entries[i] = e
	}
	return out
}

func tenantStateFromProto(in *peerv1.TenantState) ([]limiter.EntryState, error) {
	out := make([]limiter.EntryState, len(in.GetEntries()))
	for i, e := range in.GetEntries() {
		l, err := quotapb.LimitFromProto(e.GetLimit())
		if err != nil {
			return nil, err.Under(fmt.Sprintf("entries[%d].limit", i))
		}
		s := limiter.EntryState{Limit: l, LevelHi: e.GetLevelHi(), LevelLo: e.GetLevelLo(), Last: e.GetLastUnixNano(),
			Window: e.GetWindow(), Current: e.GetCurrent(), Previous: e.GetPrevious()}
		for _, le := range e.GetLeases() {
			s.Leases = append(s.Leases, limiter.LeaseState{ID: le.GetId(), Hits: le.GetHits(), Expires: le.GetExpiresUnixNano()})
		}
		out[i] = s
	}
	return out, nil
}

// Hand-off and replication messages are cut into chunks of about
// maxChunkBytes, well below what a peer accepts in one message (4 MiB),
// so any number of tenants can go to one node.
const maxChunkBytes = 1 << 20

// tenantChunks cuts tenant states into chunks of about maxChunkBytes, a
// series of them for each node they go to.
type tenantChunks struct {
	chunks []tenantChunk
	open   map[string]int // node → index in chunks of the one being filled
}

type tenantChunk struct {
	to      string
	tenants []*peerv1.TenantState
	size    int
}

func (c *tenantChunks) add(to string, ts *peerv1.TenantState) {
	size := proto.Size(ts) + 8 // and the field's tag and length
	i, ok := c.open[to]
	if !ok || c.chunks[i].size+size > maxChunkBytes {
		if c.open == nil {
			c.open = map[string]int{}
		}
		c.chunks = append(c.chunks, tenantChunk{to: to})
		i = len(c.chunks) - 1
		c.open[to] = i
	}
	c.chunks[i].tenants = append(c.chunks[i].tenants, ts)
	c.chunks[i].size += size
}

// groupBy groups items by key, each group in the items' order.
func groupBy[T any](items []T, key func(T) string) map[string][]T {
	out := map[string][]T{}
	for _, it := range items {
		out[key(it)] = append(out[key(it)], it)
	}
	return out
}
