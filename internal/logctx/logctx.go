// Package logctx carries log attributes in a context.Context so that every
// log line about a connection (correlation id, connection id, user) carries
// them without loggers being passed around by hand. Wrap a slog.Handler with
// NewHandler and log with the *Context methods (InfoContext, ...).
package logctx

import (
	"context"
	"log/slog"
)

// Key is the context key of a context's log attributes: Value(Key{})
// returns its []slog.Attr or its Source. A Context type of its own that
// carries a Source answers with it (see SourceContext).
type Key struct{}

// With returns a copy of ctx whose log lines also carry attrs.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev := Attrs(ctx)
	merged := make([]slog.Attr, 0, len(prev)+len(attrs))
	merged = append(merged, prev...)
	merged = append(merged, attrs...)
	return context.WithValue(ctx, Key{}, merged)
}

// WithString returns a copy of ctx whose log lines also carry the string
// attribute key=value, as With(ctx, slog.String(key, value)) does, in
// one allocation: the attributes are put together when a line is logged,
// not before (a connect that logs nothing builds none).
func WithString(ctx context.Context, key, value string) context.Context {
	return &stringContext{Context: ctx, key: key, value: value}
}

// stringContext is WithString's context: the Source of its lines.
type stringContext struct {
	context.Context
	key, value string
}

// Value implements context.Context.
func (c *stringContext) Value(key any) any {
	if key == (Key{}) {
		return c
	}
	return c.Context.Value(key)
}

// LogAttrs implements Source: the parent's attributes, then key=value.
func (c *stringContext) LogAttrs() []slog.Attr {
	prev := Attrs(c.Context)
	return append(prev[:len(prev):len(prev)], slog.String(c.key, c.value))
}

// Source supplies log attributes when a line is logged. A long-lived
// context (a connection's, held by each of thousands of idle connections)
// carries its Source instead of attributes built up front.
type Source interface {
	LogAttrs() []slog.Attr
}

// WithSource returns a copy of ctx whose log lines carry src's attributes
// in place of ctx's.
func WithSource(ctx context.Context, src Source) context.Context {
	return &SourceContext{Context: ctx, Source: src}
}

// SourceContext is a context whose log lines carry Source's attributes in
// place of its parent's. A long-lived value can hold one and pass its
// address as its context, with no allocation of its own; every idle
// connection has such a context.
type SourceContext struct {
	context.Context // the parent: deadline, cancellation, other values
	Source          Source
}

// Value implements context.Context.
func (c *SourceContext) Value(key any) any {
	if key == (Key{}) {
		return c.Source
	}
	return c.Context.Value(key)
}

// Attrs returns the attributes carried by ctx.
func Attrs(ctx context.Context) []slog.Attr {
	switch v := ctx.Value(Key{}).(type) {
	case []slog.Attr:
		return v
	case Source:
		return v.LogAttrs()
	}
	return nil
}

// Handler adds the context's attributes to every record.
type Handler struct{ inner slog.Handler }

// NewHandler wraps h. Wrapping an already wrapped handler returns it as is.
func NewHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(Handler); ok {
		return h
	}
	return Handler{inner: h}
}

// Enabled implements slog.Handler.
func (h Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := Attrs(ctx); len(attrs) > 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Handler{inner: h.inner.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h Handler) WithGroup(name string) slog.Handler {
	return Handler{inner: h.inner.WithGroup(name)}
}
