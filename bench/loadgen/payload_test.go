package loadgen

import (
	"encoding/json"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind Kind
		size int
	}{
		{"herald 100 B", KindHerald, 100},
		{"herald 4 KB", KindHerald, 4096},
		{"socketio 100 B", KindSocketIO, 100},
		{"herald-socketio 100 B", KindHeraldSocketIO, 100},
		{"tiny size still carries the fields", KindWS, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := AppendPayload(nil, 7, 12345, 1_795_000_000_123_456_789, tt.size)
			if tt.size > 60 && len(p) != tt.size {
				t.Errorf("payload is %d bytes, want %d", len(p), tt.size)
			}
			if !json.Valid(p) {
				t.Fatalf("payload is not JSON: %s", p)
			}
			// What a server would send back: the data inside an event.
			frame := tt.kind.AppendPublish(nil, "bench-3", p)
			body := frame
			if tt.kind.socketIO() {
				body = frame[2:] // after the "42" packet types
			}
			if !json.Valid(body) {
				t.Fatalf("publish frame is not JSON: %s", frame)
			}
			s, ok := ParsePayload(frame)
			if !ok || s.Step != 7 || s.Seq != 12345 || s.SentNanos != 1_795_000_000_123_456_789 {
				t.Fatalf("ParsePayload = %+v, %v", s, ok)
			}
		})
	}
}

func TestParsePayloadIgnoresOtherFrames(t *testing.T) {
	t.Parallel()
	for _, f := range []string{
		`{"type":"welcome","protocol":1}`,
		`{"type":"reply","id":1,"data":{"room":"bench-1"}}`,
		`42["event",{"data":{"bk":1,"bs":2}}]`, // no bt
		`{"bk":x}`,
		``,
	} {
		if s, ok := ParsePayload([]byte(f)); ok {
			t.Errorf("ParsePayload(%q) = %+v, want not ok", f, s)
		}
	}
}

func TestHasField(t *testing.T) {
	t.Parallel()
	msg := []byte(`{"type":"reply","id":12,"data":{"id":1}}`)
	if !hasField(msg, []byte(`"id":12`)) {
		t.Error(`"id":12 not found`)
	}
	if !hasField(msg, []byte(`"id":1`)) {
		t.Error(`"id":1 (inside data) not found`)
	}
	if hasField([]byte(`{"id":10}`), []byte(`"id":1`)) {
		t.Error(`"id":1 matched "id":10`)
	}
}
