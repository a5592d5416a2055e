package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"maps"
	"slices"
	"sync"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// View is one immutable version of the replicated configuration.
// The FSM swaps in a new view on every change; readers load the current
// one without a lock and never wait on the network. Nothing reachable from
// a view is modified after it is published.
type View struct {
	plans      map[string]*configv1.Plan
	tenants    map[string]*configv1.Tenant
	keys       map[string]*configv1.APIKey   // by id (display prefix)
	keyHashes  map[[32]byte]*configv1.APIKey // by SHA-256 of the key
	providers  map[string]*configv1.Provider
	rlsDomains map[string]*configv1.RLSDomain
	rlsIndex   map[string]*rlsLevel // each domain's rules, indexed when written
	seeded     bool

	indexOnce sync.Once
	idx       *viewIndex
}

func emptyView() *View {
	return &View{
		plans:      map[string]*configv1.Plan{},
		tenants:    map[string]*configv1.Tenant{},
		keys:       map[string]*configv1.APIKey{},
		keyHashes:  map[[32]byte]*configv1.APIKey{},
		providers:  map[string]*configv1.Provider{},
		rlsDomains: map[string]*configv1.RLSDomain{},
		rlsIndex:   map[string]*rlsLevel{},
	}
}

// clone copies the maps (not the values, which are never modified) so the
// FSM can change the copy and publish it.
func (v *View) clone() *View {
	return &View{
		plans:      maps.Clone(v.plans),
		tenants:    maps.Clone(v.tenants),
		keys:       maps.Clone(v.keys),
		keyHashes:  maps.Clone(v.keyHashes),
		providers:  maps.Clone(v.providers),
		rlsDomains: maps.Clone(v.rlsDomains),
		rlsIndex:   maps.Clone(v.rlsIndex),
		seeded:     v.seeded,
	}
}

// Plan, Tenant and Provider look up one entry; the result must not be
// modified.
func (v *View) Plan(name string) (*configv1.Plan, bool) {
	p, ok := v.plans[name]
	return p, ok
}

func (v *View) Tenant(id string) (*configv1.Tenant, bool) {
	t, ok := v.tenants[id]
	return t, ok
}

func (v *View) Provider(name string) (*configv1.Provider, bool) {
	p, ok := v.providers[name]
	return p, ok
}

// putRLSDomain stores d and its index; the view is not yet published.
func (v *View) putRLSDomain(d *configv1.RLSDomain) {
	v.rlsDomains[d.GetDomain()] = d
	v.rlsIndex[d.GetDomain()] = newRLSLevel(d.GetDescriptors())
}

// RLSDomain looks up an Envoy rate limit domain; the result must not be
// modified.
func (v *View) RLSDomain(domain string) (*configv1.RLSDomain, bool) {
	d, ok := v.rlsDomains[domain]
	return d, ok
}

// Plans, Tenants, Providers, Keys and RLSDomains list every entry, sorted
// by name; the entries must not be modified.
func (v *View) Plans() []*configv1.Plan           { return SortedValues(v.plans) }
func (v *View) Tenants() []*configv1.Tenant       { return SortedValues(v.tenants) }
func (v *View) Providers() []*configv1.Provider   { return SortedValues(v.providers) }
func (v *View) Keys() []*configv1.APIKey          { return SortedValues(v.keys) }
func (v *View) RLSDomains() []*configv1.RLSDomain { return SortedValues(v.rlsDomains) }

// Key returns the key with display id id, revoked or not.
func (v *View) Key(id string) (*configv1.APIKey, bool) {
	k, ok := v.keys[id]
	return k, ok
}

// Seeded reports whether the default plans have been written once.
func (v *View) Seeded() bool { return v.seeded }

// VerifyKey returns the live key whose plaintext is secret. Only hashes
// are stored: the map finds the candidate by hash, and the hashes are
// compared once more in constant time.
func (v *View) VerifyKey(secret string) (*configv1.APIKey, bool) {
	sum := sha256.Sum256([]byte(secret))
	k, ok := v.keyHashes[sum]
	if !ok || k.GetRevokedNanos() != 0 || subtle.ConstantTimeCompare(k.GetSha256(), sum[:]) != 1 {
		return nil, false
	}
	return k, true
}

// TenantPlan returns the tenant's plan with its overrides applied.
func (v *View) TenantPlan(id string) (*configv1.Plan, bool) {
	t, ok := v.tenants[id]
	if !ok {
		return nil, false
	}
	p, ok := v.plans[t.GetPlan()]
	if !ok {
		return nil, false
	}
	return EffectivePlan(p, t), true
}

// ModelProvider returns the provider that serves model (the first by name
// if several do).
func (v *View) ModelProvider(model string) (*configv1.Provider, bool) {
	p, ok := v.index().models[model]
	return p, ok
}

// Models lists every model some provider serves, sorted.
func (v *View) Models() []string { return v.index().modelNames }

// OriginAllowed reports whether any tenant allows browsers from origin:
// a CORS preflight carries no key, so it cannot name its tenant.
func (v *View) OriginAllowed(origin string) bool {
	_, ok := v.index().origins[origin]
	return ok
}

// viewIndex holds lookups derived from a view, built on first use: the
// view never changes after it is published.
type viewIndex struct {
	models     map[string]*configv1.Provider
	modelNames []string
	origins    map[string]struct{}
}

func (v *View) index() *viewIndex {
	v.indexOnce.Do(func() {
		ix := &viewIndex{models: map[string]*configv1.Provider{}, origins: map[string]struct{}{}}
		for _, name := range slices.Sorted(maps.Keys(v.providers)) {
			for _, m := range v.providers[name].GetModels() {
				if _, taken := ix.models[m]; !taken {
					ix.models[m] = v.providers[name]
					ix.modelNames = append(ix.modelNames, m)
				}
			}
		}
		slices.Sort(ix.modelNames)
		for _, t := range v.tenants {
			for _, o := range t.GetAllowedOrigins() {
				ix.origins[o] = struct{}{}
			}
		}
		v.idx = ix
	})
	return v.idx
}
