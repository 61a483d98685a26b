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
