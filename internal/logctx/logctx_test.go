package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

type idSource struct{ id string }

func (s *idSource) LogAttrs() []slog.Attr { return []slog.Attr{slog.String("conn_id", s.id)} }

func TestAttrsOnEveryLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil)))

	src := &idSource{id: "c1"}
	ctx := WithSource(context.Background(), src)
	log.InfoContext(ctx, "first")
	src.id = "c2" // a Source is read when the line is logged
	log.InfoContext(With(ctx, slog.String("room", "r")), "second")
	log.InfoContext(context.Background(), "third")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	for i, want := range []string{"msg=first conn_id=c1", "msg=second conn_id=c2 room=r", "msg=third"} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d = %q, want it to end with %q", i, lines[i], want)
		}
	}
}

// A SourceContext held by value passes the parent's values and
// cancellation through.
func TestSourceContextKeepsParent(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	holder := struct{ ctx SourceContext }{SourceContext{Context: parent, Source: &idSource{id: "c1"}}}
	ctx := context.Context(&holder.ctx)
	if got := ctx.Value(key{}); got != "v" {
		t.Errorf("parent value = %v, want v", got)
	}
	if attrs := Attrs(ctx); len(attrs) != 1 || attrs[0].Value.String() != "c1" {
		t.Errorf("Attrs = %v, want conn_id=c1", attrs)
	}
	cancel()
	<-ctx.Done()
	if ctx.Err() != context.Canceled {
		t.Errorf("Err = %v, want Canceled", ctx.Err())
	}
}

// WithString logs as With with one string attribute does, after the
// parent's attributes, and passes values and cancellation through.
func TestWithString(t *testing.T) {
	type key struct{}
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil)))
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	base := With(parent, slog.String("a", "1"))
	ctx := WithString(base, "correlation_id", "c9")
	log.InfoContext(ctx, "first")
	log.InfoContext(With(ctx, slog.String("b", "2")), "second")
	log.InfoContext(WithString(context.Background(), "k", "v"), "third")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, want := range []string{"msg=first a=1 correlation_id=c9", "msg=second a=1 correlation_id=c9 b=2", "msg=third k=v"} {
		if i >= len(lines) || !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d of %q, want it to end with %q", i, lines, want)
		}
	}
	// The parent's attributes are not changed by what is added after.
	if got := Attrs(base); len(got) != 1 {
		t.Errorf("parent's attributes %v, want a=1 alone", got)
	}
	if got := ctx.Value(key{}); got != "v" {
		t.Errorf("parent value = %v, want v", got)
	}
	cancel()
	<-ctx.Done()
	if ctx.Err() != context.Canceled {
		t.Errorf("Err = %v, want Canceled", ctx.Err())
	}
}
