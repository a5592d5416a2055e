package config

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// FSM is the replicated configuration: Raft applies committed commands to
// it on every node. Config lives in an immutable View swapped on each
// change; the usage ledger, which changes every second, is kept in
// maps under usageMu instead of being copied.
type FSM struct {
	mu   sync.Mutex // serialises Apply, Snapshot and Restore
	view atomic.Pointer[View]

	usageMu sync.RWMutex
	months  map[monthKey]*configv1.Usage
	days    map[dayKey]*configv1.Usage
	seq     map[string]uint64 // last usage flush applied, by node

	applied   atomic.Uint64
	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced whenever applied grows
}

type monthKey struct{ tenant, month string }
type dayKey struct{ tenant, model, day string }

// NewFSM returns an empty configuration.
func NewFSM() *FSM {
	f := &FSM{appliedCh: make(chan struct{})}
	f.reset(emptyView(), map[monthKey]*configv1.Usage{}, map[dayKey]*configv1.Usage{}, map[string]uint64{})
	return f
}

func (f *FSM) reset(v *View, months map[monthKey]*configv1.Usage, days map[dayKey]*configv1.Usage, seq map[string]uint64) {
	f.view.Store(v)
	f.usageMu.Lock()
	f.months, f.days, f.seq = months, days, seq
	f.usageMu.Unlock()
}

// Apply applies one committed command. A command this version cannot
// decode panics: skipping it would let the replicas diverge.
func (f *FSM) Apply(l *raft.Log) any {
	var cmd configv1.Command
	if err := proto.Unmarshal(l.Data, &cmd); err != nil {
		panic(fmt.Sprintf("raft log %d: undecodable command: %v", l.Index, err))
	}
	f.mu.Lock()
	res := f.apply(&cmd, l.AppendedAt)
	f.mu.Unlock()
	f.setApplied(l.Index)
	return res
}

func (f *FSM) apply(cmd *configv1.Command, appended time.Time) *configv1.Result {
	if res := refusal(cmd, f.view.Load(), appended); res != nil {
		return res
	}
	if u := cmd.GetRecordUsage(); u != nil {
		f.recordUsage(u)
		return done()
	}
	v := f.view.Load().clone()
	var res *configv1.Result
	switch op := cmd.Op.(type) {
	case *configv1.Command_PutPlan:
		res = put(v.plans, op.PutPlan.GetName(), op.PutPlan, cmd, "plan")
	case *configv1.Command_DeletePlan:
		res = v.deletePlan(op.DeletePlan.GetName())
	case *configv1.Command_PutTenant:
		res = v.putTenant(op.PutTenant, cmd)
	case *configv1.Command_DeleteTenant:
		res = v.deleteTenant(op.DeleteTenant.GetId())
	case *configv1.Command_CreateKey:
		res = v.createKey(op.CreateKey)
	case *configv1.Command_RevokeKey:
		res = v.revokeKey(op.RevokeKey)
	case *configv1.Command_PutProvider:
		res = put(v.providers, op.PutProvider.GetName(), op.PutProvider, cmd, "provider")
	case *configv1.Command_DeleteProvider:
		res = remove(v.providers, op.DeleteProvider.GetName(), "provider")
	case *configv1.Command_PutRlsDomain:
		if res = put(v.rlsDomains, op.PutRlsDomain.GetDomain(), op.PutRlsDomain, cmd, "rls domain"); res.GetCode() == 0 {
			v.putRLSDomain(op.PutRlsDomain)
		}
	case *configv1.Command_DeleteRlsDomain:
		res = remove(v.rlsDomains, op.DeleteRlsDomain.GetDomain(), "rls domain")
		delete(v.rlsIndex, op.DeleteRlsDomain.GetDomain())
	case *configv1.Command_SeedPlans:
		if !v.seeded {
			v.seeded = true
			for _, p := range op.SeedPlans.GetPlans() {
				if _, ok := v.plans[p.GetName()]; !ok {
					v.plans[p.GetName()] = p
				}
			}
		}
		res = done()
	default:
		panic(fmt.Sprintf("unknown raft command %T", cmd.Op))
	}
	if res.GetCode() == 0 {
		f.view.Store(v)
	}
	return res
}

// KnownCommand reports whether this version's FSM applies cmd: the one
// check before a command enters the log, since an unknown one panics on
// every replica (see Apply). Keep it in step with apply's switch.
func KnownCommand(cmd *configv1.Command) bool {
	switch cmd.Op.(type) {
	case *configv1.Command_RecordUsage, *configv1.Command_PutPlan, *configv1.Command_DeletePlan,
		*configv1.Command_PutTenant, *configv1.Command_DeleteTenant, *configv1.Command_CreateKey,
		*configv1.Command_RevokeKey, *configv1.Command_PutProvider, *configv1.Command_DeleteProvider,
		*configv1.Command_SeedPlans, *configv1.Command_PutRlsDomain, *configv1.Command_DeleteRlsDomain:
		return true
	}
	return false
}

func done() *configv1.Result { return &configv1.Result{} }

func fail(code Code, format string, args ...any) *configv1.Result {
	return &configv1.Result{Code: uint32(code), Message: fmt.Sprintf(format, args...)}
}

// put stores value under name, honouring the command's create (the name
// must be free) and update (the name must exist).
func put[T any](m map[string]T, name string, value T, cmd *configv1.Command, kind string) *configv1.Result {
	_, exists := m[name]
	switch {
	case cmd.GetCreate() && exists:
		return fail(AlreadyExists, "%s %q already exists", kind, name)
	case cmd.GetUpdate() && !exists:
		return fail(NotFound, "%s %q not found", kind, name)
	}
	m[name] = value
	return done()
}

func remove[T any](m map[string]T, name, kind string) *configv1.Result {
	if _, exists := m[name]; !exists {
		return fail(NotFound, "%s %q not found", kind, name)
	}
	delete(m, name)
	return done()
}

func (v *View) deletePlan(name string) *configv1.Result {
	for _, t := range v.tenants {
		if t.GetPlan() == name {
			return fail(FailedPrecondition, "plan %q is used by tenant %q", name, t.GetId())
		}
	}
	return remove(v.plans, name, "plan")
}

func (v *View) putTenant(t *configv1.Tenant, cmd *configv1.Command) *configv1.Result {
	if _, ok := v.plans[t.GetPlan()]; !ok {
		return fail(InvalidArgument, "plan: %q does not exist", t.GetPlan())
	}
	if old, ok := v.tenants[t.GetId()]; ok {
		t.CreatedNanos = old.GetCreatedNanos()
	}
	return put(v.tenants, t.GetId(), t, cmd, "tenant")
}

// deleteTenant removes the tenant and its keys; its usage stays in the
// ledger.
func (v *View) deleteTenant(id string) *configv1.Result {
	if res := remove(v.tenants, id, "tenant"); res.GetCode() != 0 {
		return res
	}
	for kid, k := range v.keys {
		if k.GetTenant() == id {
			delete(v.keys, kid)
			delete(v.keyHashes, [32]byte(k.GetSha256()))
		}
	}
	return done()
}

func (v *View) createKey(k *configv1.APIKey) *configv1.Result {
	if _, ok := v.tenants[k.GetTenant()]; !ok {
		return fail(NotFound, "tenant %q not found", k.GetTenant())
	}
	if len(k.GetSha256()) != 32 {
		return fail(InvalidArgument, "sha256: want 32 bytes, got %d", len(k.GetSha256()))
	}
	if _, taken := v.keys[k.GetId()]; taken {
		return fail(AlreadyExists, "key %q already exists", k.GetId())
	}
	v.keys[k.GetId()] = k
	v.keyHashes[[32]byte(k.GetSha256())] = k
	return done()
}

func (v *View) revokeKey(r *configv1.RevokeKey) *configv1.Result {
	k, ok := v.keys[r.GetId()]
	if !ok {
		return fail(NotFound, "key %q not found", r.GetId())
	}
	if k.GetRevokedNanos() == 0 {
		k = proto.CloneOf(k)
		k.RevokedNanos = r.GetRevokedNanos()
		v.keys[k.GetId()] = k
		v.keyHashes[[32]byte(k.GetSha256())] = k
	}
	return done()
}

// recordUsage adds one node's flush unless it has been applied before.
// Negative amounts are dropped: committed usage only grows.
func (f *FSM) recordUsage(u *configv1.RecordUsage) {
	f.usageMu.Lock()
	defer f.usageMu.Unlock()
	if u.GetSeq() <= f.seq[u.GetNode()] {
		return
	}
	f.seq[u.GetNode()] = u.GetSeq()
	for _, d := range u.GetDeltas() {
		if len(d.GetDay()) != len("2006-01-02") {
			continue
		}
		AddUsage(f.months, monthKey{d.GetTenant(), d.GetDay()[:7]}, d.GetUsage())
		AddUsage(f.days, dayKey{d.GetTenant(), d.GetModel(), d.GetDay()}, d.GetUsage())
	}
}

// AddUsage adds d to m[k], dropping negative amounts; sums saturate.
func AddUsage[K comparable](m map[K]*configv1.Usage, k K, d *configv1.Usage) {
	u := m[k]
	if u == nil {
		u = &configv1.Usage{}
		m[k] = u
	}
	u.Requests = satAdd(u.Requests, max(d.GetRequests(), 0))
	u.Tokens = satAdd(u.Tokens, max(d.GetTokens(), 0))
	u.PromptTokens = satAdd(u.PromptTokens, max(d.GetPromptTokens(), 0))
	u.CompletionTokens = satAdd(u.CompletionTokens, max(d.GetCompletionTokens(), 0))
	u.CostMicros = satAdd(u.CostMicros, max(d.GetCostMicros(), 0))
}

// MonthUsage returns a copy of a tenant's committed usage in a month
// (YYYY-MM).
func (f *FSM) MonthUsage(tenant, month string) *configv1.Usage {
	f.usageMu.RLock()
	defer f.usageMu.RUnlock()
	if u := f.months[monthKey{tenant, month}]; u != nil {
		return proto.CloneOf(u)
	}
	return &configv1.Usage{}
}

// DayUsage returns copies of a tenant's rows for the days of a month.
func (f *FSM) DayUsage(tenant, month string) []*configv1.DayUsage {
	f.usageMu.RLock()
	defer f.usageMu.RUnlock()
	var out []*configv1.DayUsage
	for k, u := range f.days {
		if k.tenant == tenant && len(k.day) >= 7 && k.day[:7] == month {
			out = append(out, &configv1.DayUsage{Tenant: k.tenant, Model: k.model, Day: k.day, Usage: proto.CloneOf(u)})
		}
	}
	slices.SortFunc(out, func(a, b *configv1.DayUsage) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Model, b.Model))
	})
	return out
}

// View returns the current configuration. It never waits.
func (f *FSM) View() *View { return f.view.Load() }

// Applied is the index of the last Raft log entry applied here.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

func (f *FSM) setApplied(index uint64) {
	f.appliedMu.Lock()
	if index > f.applied.Load() {
		f.applied.Store(index)
		close(f.appliedCh)
		f.appliedCh = make(chan struct{})
	}
	f.appliedMu.Unlock()
}

// WaitApplied waits until this replica has applied the log up to index.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.appliedMu.Lock()
		ch := f.appliedCh
		f.appliedMu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// state copies the whole configuration, in a stable order.
func (f *FSM) state() *configv1.State {
	v := f.view.Load()
	st := &configv1.State{
		Plans:       SortedValues(v.plans),
		Tenants:     SortedValues(v.tenants),
		Keys:        SortedValues(v.keys),
		Providers:   SortedValues(v.providers),
		RlsDomains:  SortedValues(v.rlsDomains),
		PlansSeeded: v.seeded,
		UsageSeq:    map[string]uint64{},
	}
	f.usageMu.RLock()
	defer f.usageMu.RUnlock()
	for k, u := range f.months {
		st.Months = append(st.Months, &configv1.MonthUsage{Tenant: k.tenant, Month: k.month, Usage: proto.CloneOf(u)})
	}
	for k, u := range f.days {
		st.Days = append(st.Days, &configv1.DayUsage{Tenant: k.tenant, Model: k.model, Day: k.day, Usage: proto.CloneOf(u)})
	}
	for node, seq := range f.seq {
		st.UsageSeq[node] = seq
	}
	slices.SortFunc(st.Months, func(a, b *configv1.MonthUsage) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Month, b.Month))
	})
	slices.SortFunc(st.Days, func(a, b *configv1.DayUsage) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Day, b.Day), cmp.Compare(a.Model, b.Model))
	})
	return st
}

// SortedValues returns m's values in the order of their keys.
func SortedValues[T any](m map[string]T) []T {
	names := slices.Sorted(maps.Keys(m))
	out := make([]T, len(names))
	for i, k := range names {
		out[i] = m[k]
	}
	return out
}

// Snapshot copies the state under the lock; Persist writes it later
// without holding anything.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &snapshot{state: f.state()}, nil
}

// Restore replaces the whole state with a snapshot's: it builds the new
// state first, then swaps it in under the lock.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	var st configv1.State
	if err := proto.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("decoding snapshot: %w", err)
	}
	v := emptyView()
	v.seeded = st.GetPlansSeeded()
	for _, p := range st.GetPlans() {
		v.plans[p.GetName()] = p
	}
	for _, t := range st.GetTenants() {
		v.tenants[t.GetId()] = t
	}
	for _, k := range st.GetKeys() {
		v.keys[k.GetId()] = k
		if len(k.GetSha256()) == 32 {
			v.keyHashes[[32]byte(k.GetSha256())] = k
		}
	}
	for _, p := range st.GetProviders() {
		v.providers[p.GetName()] = p
	}
	for _, d := range st.GetRlsDomains() {
		v.putRLSDomain(d)
	}
	months := map[monthKey]*configv1.Usage{}
	for _, m := range st.GetMonths() {
		months[monthKey{m.GetTenant(), m.GetMonth()}] = m.GetUsage()
	}
	days := map[dayKey]*configv1.Usage{}
	for _, d := range st.GetDays() {
		days[dayKey{d.GetTenant(), d.GetModel(), d.GetDay()}] = d.GetUsage()
	}
	seq := map[string]uint64{}
	for node, s := range st.GetUsageSeq() {
		seq[node] = s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reset(v, months, days, seq)
	return nil
}

type snapshot struct{ state *configv1.State }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	data, err := proto.Marshal(s.state)
	if err == nil {
		_, err = sink.Write(data)
	}
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// Code is the kind of a refusal in a Result. The numbers are gRPC's: the
// cluster hands them on as gRPC status codes (a follower's write comes back
// from the leader in a peer ApplyResponse), so they never change.
type Code uint32

// The refusals the FSM gives.
const (
	InvalidArgument    Code = 3
	NotFound           Code = 5
	AlreadyExists      Code = 6
	FailedPrecondition Code = 9
)
