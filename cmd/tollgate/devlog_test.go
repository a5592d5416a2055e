package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestDevLogShowsAuditLinesAndHidesRaftsStartUpWarnings(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newDevLog(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelWarn)
	log := slog.New(h)
	raft, audit, node := log.With("component", "raft"), log.With("component", "audit"), log.With("component", "node")
	raft.Warn("heartbeat timeout reached, starting election")
	node.Info("ring changed")
	audit.Info("request", "status", 200)
	node.Warn("a real warning")
	h.clusterFormed()
	raft.Warn("failed to contact")
	out := buf.String()
	for _, want := range []string{"msg=request", "a real warning", "failed to contact"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dev log lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"starting election", "ring changed"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("the dev log shows %q:\n%s", unwanted, out)
		}
	}
}
