package mediabench

import (
	"context"
	"log/slog"
)

// errorsOnly passes records at error level and above to h: the publishers' pion stacks warn
// about every connection they tear down, which would drown the benchmark's progress lines.
type errorsOnly struct{ h slog.Handler }

func (e errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && e.h.Enabled(ctx, l)
}
func (e errorsOnly) Handle(ctx context.Context, r slog.Record) error { return e.h.Handle(ctx, r) }
func (e errorsOnly) WithAttrs(as []slog.Attr) slog.Handler           { return errorsOnly{e.h.WithAttrs(as)} }
func (e errorsOnly) WithGroup(name string) slog.Handler              { return errorsOnly{e.h.WithGroup(name)} }
