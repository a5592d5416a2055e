package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	"github.com/tollgate/tollgate/quota"
)

// The admin operations, shared by the HTTP API under /admin/v1/ and the
// gRPC Admin service. Input is checked here, against this node's copy of
// the configuration, so that bad input gets an error naming the field; the
// FSM checks again what only the leader can know for sure (a name taken
// meanwhile). Reads answer from this node's copy.

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	envPattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// putMode says whether a put may create, replace, or both.
type putMode struct{ create, update bool }

func checkName(field, name string) error {
	if !namePattern.MatchString(name) {
		return quota.Invalid(field, "%q: want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func checkModels(field string, models []string) error {
	for i, m := range models {
		if m == "" || len(m) > 256 {
			return quota.Invalid(fmt.Sprintf("%s[%d]", field, i), "must be 1-256 bytes")
		}
	}
	return nil
}

func checkPlan(p *configv1.Plan) error {
	if err := checkName("name", p.GetName()); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"requests_per_minute", p.GetRequestsPerMinute()}, {"tokens_per_minute", p.GetTokensPerMinute()},
		{"tokens_per_month", p.GetTokensPerMonth()}, {"max_concurrent", p.GetMaxConcurrent()}, {"priority", int64(p.GetPriority())},
		{"default_max_tokens", p.GetDefaultMaxTokens()},
	} {
		if f.v < 0 {
			return quota.Invalid(f.name, "must be >= 0 (0: no limit), got %d", f.v)
		}
	}
	if p.GetMaxConcurrent() > 100_000 {
		return quota.Invalid("max_concurrent", "at most 100000, got %d", p.GetMaxConcurrent())
	}
	if _, err := quota.ParseFailurePolicy(p.GetFailurePolicy()); err != nil {
		return quota.Invalid("failure_policy", "%v", err)
	}
	return checkModels("allowed_models", p.GetAllowedModels())
}

func (n *Node) putPlan(ctx context.Context, p *configv1.Plan, mode putMode) (*configv1.Plan, error) {
	if p == nil {
		return nil, quota.Invalid("plan", "is required")
	}
	if p.GetFailurePolicy() == "" {
		p.FailurePolicy = "local"
	}
	if err := checkPlan(p); err != nil {
		return nil, err
	}
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutPlan{PutPlan: p}, Create: mode.create, Update: mode.update}); err != nil {
		return nil, err
	}
	return p, nil
}

func checkTenant(t *configv1.Tenant, v *ConfigView) error {
	if err := checkName("id", t.GetId()); err != nil {
		return err
	}
	if len(t.GetName()) > 256 {
		return quota.Invalid("name", "at most 256 bytes")
	}
	if t.GetPlan() == "" {
		return quota.Invalid("plan", "is required")
	}
	if _, ok := v.Plan(t.GetPlan()); !ok {
		return quota.Invalid("plan", "%q does not exist", t.GetPlan())
	}
	if o := t.GetOverrides(); o != nil {
		for _, f := range []struct {
			name string
			v    *int64
		}{
			{"requests_per_minute", o.RequestsPerMinute}, {"tokens_per_minute", o.TokensPerMinute},
			{"tokens_per_month", o.TokensPerMonth}, {"max_concurrent", o.MaxConcurrent},
		} {
			if f.v != nil && *f.v < 0 {
				return quota.Invalid("overrides."+f.name, "must be >= 0 (0: no limit), got %d", *f.v)
			}
		}
		if o.Priority != nil && *o.Priority < 0 {
			return quota.Invalid("overrides.priority", "must be >= 0, got %d", *o.Priority)
		}
		if o.MaxConcurrent != nil && *o.MaxConcurrent > 100_000 {
			return quota.Invalid("overrides.max_concurrent", "at most 100000, got %d", *o.MaxConcurrent)
		}
		if o.FailurePolicy != nil {
			if _, err := quota.ParseFailurePolicy(*o.FailurePolicy); err != nil || *o.FailurePolicy == "" {
				return quota.Invalid("overrides.failure_policy", "%q is not local, open or closed", *o.FailurePolicy)
			}
		}
	}
	if err := checkModels("allowed_models", t.GetAllowedModels()); err != nil {
		return err
	}
	for i, o := range t.GetAllowedOrigins() {
		u, err := url.Parse(o)
		if o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			return quota.Invalid(fmt.Sprintf("allowed_origins[%d]", i), "%q is not an origin like https://app.example.com, or *", o)
		}
	}
	return nil
}

func (n *Node) putTenant(ctx context.Context, t *configv1.Tenant, mode putMode) (*configv1.Tenant, error) {
	if t == nil {
		return nil, quota.Invalid("tenant", "is required")
	}
	if err := checkTenant(t, n.Config()); err != nil {
		return nil, err
	}
	t.CreatedNanos = time.Now().UnixNano() // kept from the old entry on a replace
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutTenant{PutTenant: t}, Create: mode.create, Update: mode.update}); err != nil {
		return nil, err
	}
	if got, ok := n.Config().Tenant(t.GetId()); ok {
		return got, nil
	}
	return t, nil
}

// keyAlphabet is base62: keys are "tg_" and 43 characters, 256 bits from
// crypto/rand.
const keyAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

const keyChars = 43 // 62^43 > 2^256

// newKeySecret returns a fresh API key.
func newKeySecret() string {
	b := make([]byte, 3, 3+keyChars)
	copy(b, "tg_")
	// rand.Text-style rejection sampling keeps every character uniform.
	var buf [64]byte
	for len(b) < 3+keyChars {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand since Go 1.24)
		for _, c := range buf {
			if c < 248 && len(b) < 3+keyChars { // 248 = 4 × 62
				b = append(b, keyAlphabet[c%62])
			}
		}
	}
	return string(b)
}

// keyIDLen is the length of a key's display prefix and id: "tg_" and 8
// characters, enough to tell keys apart and far too few to guess one.
const keyIDLen = 11

func (n *Node) createKey(ctx context.Context, tenant, name string) (*configv1.APIKey, string, error) {
	if _, err := n.getTenant(tenant); err != nil {
		return nil, "", err
	}
	if len(name) > 128 {
		return nil, "", quota.Invalid("name", "at most 128 bytes")
	}
	for attempt := 0; ; attempt++ {
		secret := newKeySecret()
		sum := sha256.Sum256([]byte(secret))
		k := &configv1.APIKey{Id: secret[:keyIDLen], Tenant: tenant, Sha256: sum[:], Name: name, CreatedNanos: time.Now().UnixNano()}
		err := n.write(ctx, &configv1.Command{Op: &configv1.Command_CreateKey{CreateKey: k}})
		if status.Code(err) == codes.AlreadyExists && attempt < 3 {
			continue // an id taken by another key: draw again
		}
		if err != nil {
			return nil, "", err
		}
		return withoutHash(k), secret, nil
	}
}

// keysOf lists a tenant's keys (every key if tenant is empty), without
// their hashes.
func (n *Node) keysOf(tenant string) ([]*configv1.APIKey, error) {
	v := n.Config()
	if _, ok := v.Tenant(tenant); tenant != "" && !ok {
		return nil, notFound("tenant", tenant)
	}
	var out []*configv1.APIKey
	for _, k := range sortedValues(v.keys) {
		if tenant == "" || k.GetTenant() == tenant {
			out = append(out, withoutHash(k))
		}
	}
	return out, nil
}

// withoutHash is what an answer may show of a key.
func withoutHash(k *configv1.APIKey) *configv1.APIKey {
	k = proto.CloneOf(k)
	k.Sha256 = nil
	return k
}

// getPlan, getTenant and getProvider read this node's copy; an unknown
// name is NotFound.
func (n *Node) getPlan(name string) (*configv1.Plan, error) {
	return found(n.Config().plans, "plan", name)
}

func (n *Node) getTenant(id string) (*configv1.Tenant, error) {
	return found(n.Config().tenants, "tenant", id)
}

func (n *Node) getProvider(name string) (*configv1.Provider, error) {
	return found(n.Config().providers, "provider", name)
}

func found[T any](m map[string]T, kind, name string) (T, error) {
	v, ok := m[name]
	if !ok {
		return v, notFound(kind, name)
	}
	return v, nil
}

func notFound(kind, name string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, name)
}

func (n *Node) revokeKey(ctx context.Context, id string) (*configv1.APIKey, error) {
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_RevokeKey{RevokeKey: &configv1.RevokeKey{Id: id, RevokedNanos: time.Now().UnixNano()}}}); err != nil {
		return nil, err
	}
	k, err := found(n.Config().keys, "key", id)
	if err != nil {
		return nil, err
	}
	return withoutHash(k), nil
}

func checkProvider(p *configv1.Provider) error {
	if err := checkName("name", p.GetName()); err != nil {
		return err
	}
	u, err := url.Parse(p.GetBaseUrl())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return quota.Invalid("base_url", "%q is not an http(s) URL", p.GetBaseUrl())
	}
	if p.GetApiKeyEnv() != "" && !envPattern.MatchString(p.GetApiKeyEnv()) {
		return quota.Invalid("api_key_env", "%q is not an environment variable name", p.GetApiKeyEnv())
	}
	if len(p.GetModels()) == 0 {
		return quota.Invalid("models", "at least one model is required")
	}
	if err := checkModels("models", p.GetModels()); err != nil {
		return err
	}
	if p.GetPromptPriceMicros() < 0 {
		return quota.Invalid("prompt_price_per_million", "must be >= 0")
	}
	if p.GetCompletionPriceMicros() < 0 {
		return quota.Invalid("completion_price_per_million", "must be >= 0")
	}
	return nil
}

func (n *Node) putProvider(ctx context.Context, p *configv1.Provider, mode putMode) (*configv1.Provider, error) {
	if p == nil {
		return nil, quota.Invalid("provider", "is required")
	}
	if err := checkProvider(p); err != nil {
		return nil, err
	}
	if err := n.write(ctx, &configv1.Command{Op: &configv1.Command_PutProvider{PutProvider: p}, Create: mode.create, Update: mode.update}); err != nil {
		return nil, err
	}
	return p, nil
}

// usageReport is a tenant's committed usage in a month (YYYY-MM), in
// total, by model and by day.
func (n *Node) usageReport(tenant, month string) (*configv1.UsageReport, error) {
	if month == "" {
		month = time.Now().UTC().Format("2006-01")
	} else if _, err := time.Parse("2006-01", month); err != nil {
		return nil, quota.Invalid("month", "%q is not YYYY-MM", month)
	}
	total := n.fsm.monthUsage(tenant, month)
	if _, ok := n.Config().Tenant(tenant); !ok && total.GetRequests() == 0 {
		return nil, notFound("tenant", tenant)
	}
	out := &configv1.UsageReport{Tenant: tenant, Month: month, Total: total, Days: n.fsm.dayUsage(tenant, month)}
	byModel := map[string]*configv1.Usage{}
	for _, d := range out.Days {
		addUsage(byModel, d.GetModel(), d.GetUsage())
	}
	for _, m := range slices.Sorted(maps.Keys(byModel)) {
		out.Models = append(out.Models, &configv1.ModelUsage{Model: m, Usage: byModel[m]})
	}
	return out, nil
}

// write applies a configuration command and turns the FSM's refusal into
// a gRPC status error.
func (n *Node) write(ctx context.Context, cmd *configv1.Command) error {
	res, err := n.apply(ctx, cmd)
	switch {
	case err != nil:
		n.countWrite("no_quorum")
		return err
	case res.GetCode() != 0:
		n.countWrite("refused")
		return status.Error(codes.Code(res.GetCode()), res.GetMessage())
	}
	n.countWrite("ok")
	return nil
}

// deletion is the command deleting a plan, tenant or provider.
func deletion(kind, name string) *configv1.Command {
	switch kind {
	case "plan":
		return &configv1.Command{Op: &configv1.Command_DeletePlan{DeletePlan: &configv1.DeletePlan{Name: name}}}
	case "tenant":
		return &configv1.Command{Op: &configv1.Command_DeleteTenant{DeleteTenant: &configv1.DeleteTenant{Id: name}}}
	}
	return &configv1.Command{Op: &configv1.Command_DeleteProvider{DeleteProvider: &configv1.DeleteProvider{Name: name}}}
}

func (n *Node) countWrite(result string) {
	if n.raftMetrics != nil {
		n.raftMetrics.writes.WithLabelValues(result).Inc()
	}
}
