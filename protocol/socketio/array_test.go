package socketio

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestSplitArray(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // nil: not an array
	}{
		{"empty", `[]`, []string{}},
		{"spaced empty", " [ \n] ", []string{}},
		{"scalars", `[1,"a",true,null,-2.5e3]`, []string{`1`, `"a"`, `true`, `null`, `-2.5e3`}},
		{"nested", `[{"a":[1,{"b":"]"}]},[[]],"x\"],y"]`, []string{`{"a":[1,{"b":"]"}]}`, `[[]]`, `"x\"],y"`}},
		{"whitespace", "[ 1 ,\t\"b\" \n, {} ]", []string{`1`, `"b"`, `{}`}},
		{"escaped backslash", `["a\\",2]`, []string{`"a\\"`, `2`}},
		{"object", `{"a":1}`, nil},
		{"string", `"[1]"`, nil},
		{"trailing text", `[1] 2`, nil},
		{"unclosed", `[1,2`, nil},
		{"nothing", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SplitArray([]byte(tt.in))
			if ok != (tt.want != nil) {
				t.Fatalf("SplitArray(%q) ok = %v", tt.in, ok)
			}
			checkSplitEvent(t, []byte(tt.in), got, ok)
			if !ok {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("SplitArray(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Fatalf("SplitArray(%q)[%d] = %q, want %q", tt.in, i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestEventName(t *testing.T) {
	for raw, want := range map[string]string{`"chat"`: "chat", `"a\"b"`: `a"b`, `"\u00e9"`: "é", `12`: "12", `"é"`: "é"} {
		if got, err := EventName([]byte(raw)); err != nil || got != want {
			t.Errorf("EventName(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

// SplitArray of valid JSON agrees with encoding/json: the same elements,
// whitespace aside.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a",{"b":[2]}]`, `["x\"]",null]`, ` [ true , false ] `, `{"a":1}`, `"s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := SplitArray(data)
		if !json.Valid(data) {
			return // only valid JSON (what Decode passes on) has to split right
		}
		var want []json.RawMessage
		isArray := json.Unmarshal(data, &want) == nil && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("["))
		if ok != isArray {
			t.Fatalf("SplitArray(%q) ok = %v, encoding/json says array %v", data, ok, isArray)
		}
		checkSplitEvent(t, data, got, ok)
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("SplitArray(%q): %d elements, encoding/json %d", data, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], bytes.TrimSpace(want[i])) {
				t.Fatalf("SplitArray(%q)[%d] = %q, encoding/json %q", data, i, got[i], want[i])
			}
		}
	})
}

// checkSplitEvent checks SplitEvent(data) against SplitArray's elems and
// ok for the same data: the first element apart, the rest in a slice of
// their exact number.
func checkSplitEvent(t *testing.T, data []byte, elems []json.RawMessage, ok bool) {
	t.Helper()
	name, args, eok := SplitEvent(data)
	if eok != (ok && len(elems) > 0) {
		t.Fatalf("SplitEvent(%q) ok = %v, SplitArray has %d elements (ok %v)", data, eok, len(elems), ok)
	}
	if !eok {
		return
	}
	if !bytes.Equal(name, elems[0]) || len(args) != len(elems)-1 || cap(args) != len(args) {
		t.Fatalf("SplitEvent(%q) = %q, %q (cap %d); SplitArray %q", data, name, args, cap(args), elems)
	}
	for i := range args {
		if !bytes.Equal(args[i], elems[i+1]) {
			t.Fatalf("SplitEvent(%q) args[%d] = %q, want %q", data, i, args[i], elems[i+1])
		}
	}
}

// SplitEvent allocates its arguments' slice once, and nothing for an
// event without arguments.
func TestSplitEventAllocations(t *testing.T) {
	for in, want := range map[string]float64{`["e"]`: 0, `["e",{"room":"r"}]`: 1, `["e",1,2,3]`: 1} {
		data := []byte(in)
		if n := testing.AllocsPerRun(100, func() { SplitEvent(data) }); n != want {
			t.Errorf("SplitEvent(%s) allocates %v times, want %v", in, n, want)
		}
	}
}
