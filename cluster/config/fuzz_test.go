package config

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
)

// FuzzApply feeds arbitrary commands, as a peer's Apply would carry them,
// to two replicas: a command the leader lets into the log (it decodes and
// is known) never panics, and both replicas end in the same state.
func FuzzApply(f *testing.F) {
	for _, cmd := range []*configv1.Command{
		{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: DefaultPlans()}}},
		{Op: &configv1.Command_PutTenant{PutTenant: &configv1.Tenant{Id: "acme", Plan: "gold"}}},
		{Op: &configv1.Command_CreateKey{CreateKey: &configv1.APIKey{Id: "tg_abcdefgh", Tenant: "acme", Sha256: make([]byte, 32)}}},
		{Op: &configv1.Command_RecordUsage{RecordUsage: &configv1.RecordUsage{Node: "n1", Seq: 7, Deltas: []*configv1.UsageDelta{{Tenant: "acme", Day: "2026-11-24", Usage: &configv1.Usage{Tokens: 9}}}}}},
		{Op: &configv1.Command_RecordUsage{RecordUsage: &configv1.RecordUsage{Node: "n1", Seq: 1<<64 - 1, Deltas: []*configv1.UsageDelta{{Tenant: "acme", Day: "2026-11-24", Usage: &configv1.Usage{Tokens: 9e18}}}}}},
		{Op: &configv1.Command_PutProvider{PutProvider: &configv1.Provider{Name: "p", BaseUrl: "https://x", Models: []string{"m"}}}},
		{Op: &configv1.Command_PutRlsDomain{PutRlsDomain: testRLSDomain()}},
		{Op: &configv1.Command_DeleteRlsDomain{DeleteRlsDomain: &configv1.DeleteRLSDomain{Domain: "edge"}}},
	} {
		data, _ := proto.Marshal(cmd)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cmd configv1.Command
		if proto.Unmarshal(data, &cmd) != nil || !KnownCommand(&cmd) {
			return // refused before the log (see the leader's Apply)
		}
		a, b := NewFSM(), NewFSM()
		seed, _ := proto.Marshal(&configv1.Command{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: DefaultPlans()}}})
		// Appended at a real time, as the leader stamps entries, so that
		// the checks that depend on it (a usage record's sequence) run.
		appended := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		for i, d := range [][]byte{seed, data, data} {
			a.Apply(&raft.Log{Index: uint64(i + 1), Data: d, AppendedAt: appended})
			b.Apply(&raft.Log{Index: uint64(i + 1), Data: d, AppendedAt: appended})
		}
		if !proto.Equal(a.state(), b.state()) {
			t.Fatal("two replicas diverged on one command")
		}
	})
}

// FuzzRestore feeds arbitrary snapshots to Restore: it never panics, and
// a snapshot it takes restores to an equal state again.
func FuzzRestore(f *testing.F) {
	full := NewFSM()
	applyAll(f, full, &configv1.Command{Op: &configv1.Command_SeedPlans{SeedPlans: &configv1.SeedPlans{Plans: DefaultPlans()}}},
		&configv1.Command{Op: &configv1.Command_PutRlsDomain{PutRlsDomain: testRLSDomain()}})
	data, _ := proto.Marshal(full.state())
	f.Add(data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		f := NewFSM()
		if f.Restore(io.NopCloser(bytes.NewReader(data))) != nil {
			return
		}
		again, _ := proto.Marshal(f.state())
		g := NewFSM()
		if err := g.Restore(io.NopCloser(bytes.NewReader(again))); err != nil || !proto.Equal(f.state(), g.state()) {
			t.Fatalf("a restored state does not restore again: %v", err)
		}
	})
}
