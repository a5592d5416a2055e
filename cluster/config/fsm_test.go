package config

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

func applyAll(t testing.TB, f *FSM, cmds ...*configv1.Command) {
	t.Helper()
	for _, cmd := range cmds {
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Apply(&raft.Log{Index: f.applied.Load() + 1, Data: data}).(*configv1.Result); res.GetCode() != 0 {
			t.Fatalf("%v: %s", cmd, res.GetMessage())
		}
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMSnapshotRestoresAnEqualState(t *testing.T) {
	t.Parallel()
	f := NewFSM()
	sum := [32]byte{1, 2, 3}
	rpm := int64(7)
	applyAll(t, f,
		&configv1.Command{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: DefaultPlans()}}},
		&configv1.Command{Op: &configv1.Command_PutTenant{PutTenant: &configv1.Tenant{Id: "acme", Plan: "gold",
			Overrides: &configv1.Overrides{RequestsPerMinute: &rpm}, AllowedOrigins: []string{"https://a.example"}}}},
		&configv1.Command{Op: &configv1.Command_CreateKey{CreateKey: &configv1.APIKey{Id: "tg_abcdefgh", Tenant: "acme", Sha256: sum[:], CreatedNanos: 5}}},
		&configv1.Command{Op: &configv1.Command_PutProvider{PutProvider: &configv1.Provider{Name: "openai", BaseUrl: "https://api.example", Models: []string{"m"}, PromptPriceMicros: 2_500_000}}},
		&configv1.Command{Op: &configv1.Command_PutRlsDomain{PutRlsDomain: testRLSDomain()}},
		&configv1.Command{Op: &configv1.Command_RecordUsage{RecordUsage: &configv1.RecordUsage{Node: "n1", Seq: 3, Deltas: []*configv1.UsageDelta{
			{Tenant: "acme", Model: "m", Day: "2026-11-24", Usage: &configv1.Usage{Requests: 2, Tokens: 300, CostMicros: 9}},
			{Tenant: "acme", Day: "2026-11-25", Usage: &configv1.Usage{Requests: 1, Tokens: 50}},
		}}}},
	)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || sink.cancelled {
		t.Fatalf("persist: %v (cancelled %v)", err, sink.cancelled)
	}
	restored := NewFSM()
	if err := restored.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if want, got := f.state(), restored.state(); !proto.Equal(want, got) {
		t.Fatalf("restored state differs:\nwant %v\ngot  %v", want, got)
	}
	if got := restored.MonthUsage("acme", "2026-11"); got.GetTokens() != 350 || got.GetRequests() != 3 {
		t.Fatalf("restored month usage = %v", got)
	}
	if k, ok := restored.view.Load().keyHashes[sum]; !ok || k.GetTenant() != "acme" {
		t.Fatal("restored key is not found by its hash")
	}
	if rule, _ := restored.View().RLSMatch("edge", []RLSEntry{{"remote_address", "10.0.0.1"}}); rule.GetRateLimit().GetRequestsPerUnit() != 5 {
		t.Fatalf("restored rls domain does not match: %v", rule)
	}
}

func TestFSMAppliesAUsageFlushOnceAndNeverShrinks(t *testing.T) {
	t.Parallel()
	f := NewFSM()
	flush := func(seq uint64, tokens int64) *configv1.Command {
		return &configv1.Command{Op: &configv1.Command_RecordUsage{RecordUsage: &configv1.RecordUsage{Node: "n1", Seq: seq,
			Deltas: []*configv1.UsageDelta{{Tenant: "t", Day: "2026-11-01", Usage: &configv1.Usage{Tokens: tokens}}}}}}
	}
	applyAll(t, f, flush(1, 100), flush(1, 100), flush(2, -40), flush(3, 5))
	if got := f.MonthUsage("t", "2026-11").GetTokens(); got != 105 {
		t.Fatalf("tokens = %d, want 105 (a retried flush once, a negative amount dropped)", got)
	}
}

// applyCode applies one command appended at appended and returns the code
// of its result.
func applyCode(f *FSM, cmd *configv1.Command, appended time.Time) uint32 {
	data, _ := proto.Marshal(cmd)
	return f.Apply(&raft.Log{Index: f.Applied() + 1, Data: data, AppendedAt: appended}).(*configv1.Result).GetCode()
}

// Commands that reach the log without the admin operations' checks (a
// forged peer write) are refused where they are applied, and change
// nothing.
func TestFSMRefusesForgedCommands(t *testing.T) {
	t.Parallel()
	f := NewFSM()
	applyAll(t, f, &configv1.Command{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: DefaultPlans()}}},
		&configv1.Command{Op: &configv1.Command_PutTenant{PutTenant: &configv1.Tenant{Id: "acme", Plan: "gold"}}})
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	usage := func(seq uint64, tenant string, tokens int64) *configv1.Command {
		return &configv1.Command{Op: &configv1.Command_RecordUsage{RecordUsage: &configv1.RecordUsage{Node: "n1", Seq: seq,
			Deltas: []*configv1.UsageDelta{{Tenant: tenant, Day: "2026-11-24", Usage: &configv1.Usage{Tokens: tokens}}}}}}
	}
	before := f.state()
	for name, cmd := range map[string]*configv1.Command{
		"a tenant named with a NUL":   {Op: &configv1.Command_PutTenant{PutTenant: &configv1.Tenant{Id: "ev\x00il", Plan: "gold"}}},
		"a tenant with a bidi name":   {Op: &configv1.Command_PutTenant{PutTenant: &configv1.Tenant{Id: "t2", Name: "a\u202eb", Plan: "gold"}}},
		"a plan with a negative rate": {Op: &configv1.Command_PutPlan{PutPlan: &configv1.Plan{Name: "neg", RequestsPerMinute: -5}}},
		"a key with no key id":        {Op: &configv1.Command_CreateKey{CreateKey: &configv1.APIKey{Id: "x", Tenant: "acme", Sha256: make([]byte, 32)}}},
		"a provider off http(s)":      {Op: &configv1.Command_PutProvider{PutProvider: &configv1.Provider{Name: "p", BaseUrl: "file:///etc/passwd", Models: []string{"m"}}}},
		"an rls rule of no unit": {Op: &configv1.Command_PutRlsDomain{PutRlsDomain: &configv1.RLSDomain{Domain: "edge",
			Descriptors: []*configv1.RLSDescriptor{{Key: "k", RateLimit: &configv1.RLSRateLimit{RequestsPerUnit: 5}}}}}},
		"a sequence far ahead": usage(math.MaxUint64, "acme", 1),
		"usage of no tenant":   usage(uint64(now.UnixNano()), "", 1),
		"usage on no date":     {Op: &configv1.Command_RecordUsage{RecordUsage: &configv1.RecordUsage{Node: "n1", Seq: 1, Deltas: []*configv1.UsageDelta{{Tenant: "acme", Day: "2026-13-45"}}}}},
	} {
		if code := applyCode(f, cmd, now); code != uint32(InvalidArgument) {
			t.Errorf("%s: code %d, want InvalidArgument", name, code)
		}
	}
	if !proto.Equal(before, f.state()) {
		t.Fatal("a refused command changed the state")
	}
	// The node's honest flushes still land after a forged sequence was
	// refused, and sums saturate rather than wrap.
	seq := uint64(now.UnixNano())
	for i := range uint64(3) {
		if code := applyCode(f, usage(seq+i, "acme", 4e18), now); code != 0 {
			t.Fatalf("flush %d: code %d", i, code)
		}
	}
	if got := f.MonthUsage("acme", "2026-11").GetTokens(); got != math.MaxInt64 {
		t.Fatalf("tokens = %d, want the sum saturated at %d", got, int64(math.MaxInt64))
	}
}

func TestFSMRefusalsAreTypedAndChangeNothing(t *testing.T) {
	t.Parallel()
	f := NewFSM()
	applyAll(t, f, &configv1.Command{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: DefaultPlans()}}})
	before := f.state()
	for _, tc := range []struct {
		cmd  *configv1.Command
		code uint32
	}{
		{&configv1.Command{Op: &configv1.Command_PutTenant{PutTenant: &configv1.Tenant{Id: "x", Plan: "nope"}}}, 3},
		{&configv1.Command{Op: &configv1.Command_PutPlan{PutPlan: &configv1.Plan{Name: "gold"}}, Create: true}, 6},
		{&configv1.Command{Op: &configv1.Command_DeleteTenant{DeleteTenant: &configv1.DeleteTenant{Id: "x"}}}, 5},
		{&configv1.Command{Op: &configv1.Command_CreateKey{CreateKey: &configv1.APIKey{Id: "tg_abcdefgh", Tenant: "x", Sha256: make([]byte, 32)}}}, 5},
	} {
		data, _ := proto.Marshal(tc.cmd)
		res := f.Apply(&raft.Log{Index: 9, Data: data}).(*configv1.Result)
		if res.GetCode() != tc.code {
			t.Errorf("%v: code %d (%s), want %d", tc.cmd, res.GetCode(), res.GetMessage(), tc.code)
		}
	}
	if !proto.Equal(before, f.state()) {
		t.Fatal("a refused command changed the state")
	}
}

func BenchmarkVerifyKey(b *testing.B) {
	f := NewFSM()
	v := f.view.Load()
	secrets := make([]string, 100_000)
	for i := range secrets {
		secrets[i] = newKeySecret()
		sum := sha256Sum(secrets[i])
		k := &configv1.APIKey{Id: secrets[i][:keyIDLen], Tenant: "t", Sha256: sum[:]}
		v.keys[k.Id], v.keyHashes[sum] = k, k
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok := v.VerifyKey(secrets[i%len(secrets)]); !ok {
			b.Fatal("a stored key does not verify")
		}
	}
}
func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// The FSM's refusal codes are gRPC's, which the cluster hands on as they
// are.
func TestRefusalCodesAreGRPCs(t *testing.T) {
	t.Parallel()
	for code, want := range map[Code]codes.Code{
		InvalidArgument: codes.InvalidArgument, NotFound: codes.NotFound,
		AlreadyExists: codes.AlreadyExists, FailedPrecondition: codes.FailedPrecondition,
	} {
		if uint32(code) != uint32(want) {
			t.Errorf("code %d stands for %s (%d)", code, want, want)
		}
	}
}
