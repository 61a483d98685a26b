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
