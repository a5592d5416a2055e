package main

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// devLog is the log of `tollgate dev`: at its level (warn by default), but
// every request's audit line is shown (the demo is about them), and the
// warnings Raft gives while a new cluster forms (an election, followers
// with no log yet) count as debug until it has formed.
type devLog struct {
	inner  slog.Handler // lets everything through; devLog filters
	level  slog.Level
	formed *atomic.Bool
	// set by WithAttrs from the logger's component
	audit, raft bool
}

func newDevLog(inner slog.Handler, level slog.Level) *devLog {
	return &devLog{inner: inner, level: level, formed: new(atomic.Bool)}
}

// clusterFormed ends the grace of Raft's start-up warnings.
func (h *devLog) clusterFormed() { h.formed.Store(true) }

func (h *devLog) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level || (h.audit && l >= slog.LevelInfo) || (h.raft && l >= slog.LevelWarn)
}

func (h *devLog) Handle(ctx context.Context, r slog.Record) error {
	if h.raft && !h.formed.Load() && r.Level == slog.LevelWarn {
		if slog.LevelDebug < h.level {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	if r.Level < h.level && !(h.audit && r.Level >= slog.LevelInfo) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *devLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "component" {
			c.audit, c.raft = a.Value.String() == "audit", a.Value.String() == "raft"
		}
	}
	return &c
}

func (h *devLog) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
