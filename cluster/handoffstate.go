package cluster

import (
	"fmt"

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
