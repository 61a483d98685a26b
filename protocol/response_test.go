package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFramesAreNotHTMLEscaped: frames are read by programs and shown to
// people (herald connect), never embedded in HTML, so '<', '>' and '&'
// stay as they are, and the result is still valid JSON that decodes back.
func TestFramesAreNotHTMLEscaped(t *testing.T) {
	const msg = `use "Bearer <key>" & retry`
	frame := EncodeError(json.RawMessage("1"), "bad_request", msg)
	if !strings.Contains(string(frame), `Bearer <key>\" & retry`) {
		t.Fatalf("error frame %s escapes HTML characters", frame)
	}
	var back ErrorFrame
	if err := json.Unmarshal(frame, &back); err != nil || back.Message != msg {
		t.Fatalf("error frame %s decodes to %q, %v", frame, back.Message, err)
	}
	for _, s := range []string{"<room&1>", "a\"b\\c\n", "\u2028", "bad\xffutf8"} {
		out := AppendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %s: not valid JSON", s, out)
		}
		want, _ := Marshal(s)
		if string(out) != string(want) {
			t.Errorf("AppendString(%q) = %s, Marshal gives %s", s, out, want)
		}
	}
	if b, _ := Marshal(map[string]string{"h": "<&>"}); string(b) != `{"h":"<&>"}` {
		t.Errorf("Marshal = %s", b)
	}
}

// TestEncodeWelcome: the hand-written encoding is Marshal's, byte for byte.
func TestEncodeWelcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		w    Welcome
	}{
		{"fresh", Welcome{Protocol: Version, ConnectionID: "c1", SessionID: "s1", CorrelationID: "c1", UserID: "alice", HeartbeatMs: 30000, ResumeToken: "t1"}},
		{"resumed with rooms", Welcome{Protocol: Version, ConnectionID: "c2", SessionID: "s2", CorrelationID: "req-9", UserID: "bob", ResumeToken: "t2", Resumed: true, Rooms: []string{"a", "chat:b"}}},
		{"empty rooms", Welcome{Protocol: Version, Rooms: []string{}}},
		{"odd strings", Welcome{Protocol: -1, UserID: "é \"q\" \\ <&> \u2028 \x01 \n\t\r", CorrelationID: "\xff", HeartbeatMs: -5, Rooms: []string{"", "日本"}}},
	}
	for _, tt := range tests {
		w := tt.w
		w.Type = TypeWelcome
		want := mustMarshal(w)
		if got := EncodeWelcome(tt.w); string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, want)
		}
		if got := EncodeWelcomeAfter(10, tt.w); len(got) < 10 || string(got[10:]) != string(want) {
			t.Errorf("%s, after 10 bytes of room:\n got %q\nwant %s", tt.name, got, want)
		}
	}
}

func BenchmarkEncodeWelcome(b *testing.B) {
	w := Welcome{Protocol: Version, ConnectionID: "0123456789abcdef", SessionID: "0123456789abcdefghjkmnpq", CorrelationID: "0123456789abcdef",
		UserID: "bench-user-0", HeartbeatMs: 30000, ResumeToken: "0123456789abcdefghjkmnpq"}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = EncodeWelcome(w)
		}
	})
	b.Run("marshal", func(b *testing.B) { // the encoding before the hand-written one
		w.Type = TypeWelcome
		b.ReportAllocs()
		for b.Loop() {
			_ = mustMarshal(w)
		}
	})
}
