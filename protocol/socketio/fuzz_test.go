package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodePacket checks that any message decodes without panicking, that
// only the two sentinel errors come out, and that an accepted packet survives
// Encode and Decode unchanged; for a binary packet it also checks that the
// attachments are reconstructed and resolved.
func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{
		`0`, `0/admin,`, `0{"token":"123"}`, `1/admin,`, `2["hello",1]`,
		`2/admin,456["project:delete",123]`, `3/admin,456[]`, `4{"message":"Not authorized"}`,
		`51-["hello",{"_placeholder":true,"num":0}]`, `61-/admin,456[{"_placeholder":true,"num":0}]`,
		`52-[1,{"a":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":0}]`, `5`, `2/`, `0/,`,
	} {
		f.Add([]byte(s))
	}
	limits := Limits{MaxPacketBytes: 4096, MaxAttachments: 8, MaxNamespaceBytes: 32}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Decode(in, limits)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode(%q): error %v wraps neither ErrInvalid nor ErrTooLarge", in, err)
			}
			return
		}
		if len(p.Namespace) > limits.MaxNamespaceBytes || p.Attachments > limits.MaxAttachments || p.ID > MaxAckID {
			t.Fatalf("Decode(%q) = %+v beyond limits", in, p)
		}
		enc, err := Encode(p)
		if err != nil {
			t.Fatalf("Encode(%+v) after decode: %v", p, err)
		}
		q, err := Decode(enc, limits)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v, %v", in, p, enc, q, err)
		}
		if !p.Type.IsBinary() {
			return
		}
		r, err := NewReconstructor(p, limits)
		if err != nil {
			t.Fatalf("NewReconstructor(%+v): %v", p, err)
		}
		for i := 0; i < p.Attachments; i++ {
			if _, err := r.Add([]byte{byte(i)}); err != nil {
				t.Fatalf("Add %d: %v", i, err)
			}
		}
		_, atts, err := r.Packet()
		if err != nil {
			t.Fatalf("Packet: %v", err)
		}
		v, err := Resolve(p.Data, atts)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", p.Data, err)
		}
		data, atts2, err := Deconstruct(v)
		if err != nil || len(atts2) != len(atts) {
			t.Fatalf("Deconstruct: %d attachments, %v", len(atts2), err)
		}
		w, err := Resolve(data, atts2)
		if err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("Resolve(Deconstruct(v)) = %#v, %v; want %#v", w, err, v)
		}
	})
}

// FuzzDecodeAttachments drives Resolve directly with any payload and
// attachment count: it must fail cleanly or put every attachment in place.
func FuzzDecodeAttachments(f *testing.F) {
	f.Add([]byte(`["x",{"_placeholder":true,"num":0}]`), uint8(1))
	f.Add([]byte(`[{"_placeholder":true,"num":1},{"k":{"_placeholder":true,"num":0}}]`), uint8(2))
	f.Add([]byte(`{"_placeholder":true,"num":0}`), uint8(1))
	f.Add([]byte(`[{"_placeholder":true,"num":0,"num":1}]`), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		atts := make([][]byte, n%16)
		for i := range atts {
			atts[i] = []byte{byte(i), 0xfe}
		}
		v, err := Resolve(json.RawMessage(data), atts)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Resolve: error %v does not wrap ErrInvalid", err)
			}
			return
		}
		found := 0
		var count func(any)
		count = func(v any) {
			switch x := v.(type) {
			case []byte:
				if !bytes.Equal(x, atts[x[0]]) {
					t.Fatalf("attachment %d is %v", x[0], x)
				}
				found++
			case []any:
				for _, e := range x {
					count(e)
				}
			case map[string]any:
				for _, e := range x {
					count(e)
				}
			}
		}
		count(v)
		if found != len(atts) {
			t.Fatalf("Resolve placed %d of %d attachments", found, len(atts))
		}
	})
}
