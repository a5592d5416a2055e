package cluster

import (
	"bytes"
	"context"
	"log/slog"
)

// libraryLogHandler turns a library's "[LEVEL] prefix ..." lines (memberlist's
// through a log.Logger) into leveled slog records.
type libraryLogHandler struct {
	log    *slog.Logger
	prefix string
}

func (h *libraryLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *libraryLogHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *libraryLogHandler) WithGroup(string) slog.Handler            { return h }

func (h *libraryLogHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := leveledLine([]byte(r.Message), h.prefix)
	h.log.Log(ctx, level, msg)
	return nil
}

// libraryLevels are the level tags memberlist ("[ERR] ") and hclog, for
// Raft ("[ERROR]  "), start their lines with.
var libraryLevels = []struct {
	tag   string
	level slog.Level
}{
	{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

// leveledLine splits a library's log line into its level (info if it has
// no tag) and its message, without the tag and the library's own prefix.
func leveledLine(line []byte, prefix string) (slog.Level, string) {
	line = bytes.TrimSpace(line)
	level := slog.LevelInfo
	for _, l := range libraryLevels {
		if rest, ok := bytes.CutPrefix(line, []byte(l.tag)); ok {
			level, line = l.level, bytes.TrimSpace(rest)
			break
		}
	}
	return level, string(bytes.TrimPrefix(line, []byte(prefix)))
}
