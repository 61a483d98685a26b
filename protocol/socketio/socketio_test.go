package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The examples of the Socket.IO v5 specification.
func TestDecodeSpecExamples(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
	}{
		{`0`, Packet{Type: Connect, Namespace: "/"}},
		{`0/admin,`, Packet{Type: Connect, Namespace: "/admin"}},
		{`0{"token":"123"}`, Packet{Type: Connect, Namespace: "/", Data: json.RawMessage(`{"token":"123"}`)}},
		{`0/admin,{"token":"123"}`, Packet{Type: Connect, Namespace: "/admin", Data: json.RawMessage(`{"token":"123"}`)}},
		{`0{"sid":"oSO0OpakMV_3jnilAAAA"}`, Packet{Type: Connect, Namespace: "/", Data: json.RawMessage(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)}},
		{`1`, Packet{Type: Disconnect, Namespace: "/"}},
		{`1/admin,`, Packet{Type: Disconnect, Namespace: "/admin"}},
		{`2["hello",1]`, Packet{Type: Event, Namespace: "/", Data: json.RawMessage(`["hello",1]`)}},
		{`2/admin,456["project:delete",123]`, Packet{Type: Event, Namespace: "/admin", HasID: true, ID: 456, Data: json.RawMessage(`["project:delete",123]`)}},
		{`212["foo"]`, Packet{Type: Event, Namespace: "/", HasID: true, ID: 12, Data: json.RawMessage(`["foo"]`)}},
		{`3/admin,456[]`, Packet{Type: Ack, Namespace: "/admin", HasID: true, ID: 456, Data: json.RawMessage(`[]`)}},
		{`313["bar"]`, Packet{Type: Ack, Namespace: "/", HasID: true, ID: 13, Data: json.RawMessage(`["bar"]`)}},
		{`4{"message":"Not authorized"}`, Packet{Type: ConnectError, Namespace: "/", Data: json.RawMessage(`{"message":"Not authorized"}`)}},
		{`4/foo,{"message":"Invalid namespace"}`, Packet{Type: ConnectError, Namespace: "/foo", Data: json.RawMessage(`{"message":"Invalid namespace"}`)}},
		{`51-["hello",{"_placeholder":true,"num":0}]`, Packet{Type: BinaryEvent, Namespace: "/", Attachments: 1, Data: json.RawMessage(`["hello",{"_placeholder":true,"num":0}]`)}},
		{`61-/admin,456[{"_placeholder":true,"num":0}]`, Packet{Type: BinaryAck, Namespace: "/admin", HasID: true, ID: 456, Attachments: 1, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`)}},
		{`52-["a",{"x":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":0}]`, Packet{Type: BinaryEvent, Namespace: "/", Attachments: 2, Data: json.RawMessage(`["a",{"x":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":0}]`)}},
		{`2[1,"numeric event name"]`, Packet{Type: Event, Namespace: "/", Data: json.RawMessage(`[1,"numeric event name"]`)}},
		{`4"plain error"`, Packet{Type: ConnectError, Namespace: "/", Data: json.RawMessage(`"plain error"`)}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in), Limits{})
		if err != nil {
			t.Errorf("Decode(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		enc, err := Encode(got)
		if err != nil || string(enc) != tt.in {
			t.Errorf("Encode(%+v) = %q, %v; want %q", got, enc, err, tt.in)
		}
	}
}

// The comma after a namespace may be left off when nothing follows it.
func TestDecodeNamespaceWithoutComma(t *testing.T) {
	got, err := Decode([]byte("1/admin"), Limits{})
	if err != nil || got.Namespace != "/admin" || got.Type != Disconnect {
		t.Fatalf("Decode(1/admin) = %+v, %v", got, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	long := "/" + strings.Repeat("n", 300)
	tests := []struct {
		in   string
		want error
	}{
		{``, ErrInvalid},
		{`7`, ErrInvalid},
		{`x["a"]`, ErrInvalid},
		{`0[]`, ErrInvalid},          // CONNECT payload must be an object
		{`0"x"`, ErrInvalid},         //
		{`0null`, ErrInvalid},        //
		{`0{`, ErrInvalid},           // bad JSON
		{`0{} x`, ErrInvalid},        // trailing data
		{`012`, ErrInvalid},          // ack id on CONNECT
		{`1{}`, ErrInvalid},          // DISCONNECT payload
		{`2`, ErrInvalid},            // EVENT without payload
		{`2[]`, ErrInvalid},          // empty EVENT
		{`2{}`, ErrInvalid},          // EVENT payload not an array
		{`2[null]`, ErrInvalid},      // event name must be string or number
		{`2[{"a":1}]`, ErrInvalid},   //
		{`2["connect"]`, ErrInvalid}, // reserved event name
		{`2["disconnect",1]`, ErrInvalid},
		{`2["conn\u0065ct"]`, ErrInvalid}, // reserved, escaped
		{`2["disconnecting"]`, ErrInvalid},
		{`3[]`, ErrInvalid},                         // ACK without id
		{`31{}`, ErrInvalid},                        // ACK payload not an array
		{`31`, ErrInvalid},                          // ACK without payload
		{`4`, ErrInvalid},                           // CONNECT_ERROR without payload
		{`4[]`, ErrInvalid},                         // CONNECT_ERROR payload not object/string
		{`2/a,b,["x"]`, ErrInvalid},                 // comma in the rest
		{"2/a\x00,[\"x\"]", ErrInvalid},             // control character in namespace
		{"2/\xff,[\"x\"]", ErrInvalid},              // namespace not UTF-8
		{`29007199254740992["x"]`, ErrInvalid},      // ack id above 2^53-1
		{`2123456789012345678901["x"]`, ErrInvalid}, // ack id far too long
		{`5["x"]`, ErrInvalid},                      // BINARY_EVENT without count
		{`5-["x"]`, ErrInvalid},                     //
		{`51["x"]`, ErrInvalid},                     // count without dash
		{`51-["x"]`, ErrInvalid},                    // placeholder missing
		{`51-["x",{"_placeholder":true,"num":1}]`, ErrInvalid},
		{`52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]`, ErrInvalid},
		{`51-["x",{"_placeholder":true,"num":-1}]`, ErrInvalid},
		{`51-["x",{"_placeholder":true,"num":0.5}]`, ErrInvalid},
		{`51-["x",{"_placeholder":true,"num":"0"}]`, ErrInvalid},
		{`51-["x",{"_placeholder":true,"num":0,"y":1}]`, ErrInvalid},
		{`61-[{"_placeholder":true,"num":0}]`, ErrInvalid}, // BINARY_ACK without id
		{`565-["x"]`, ErrTooLarge},                         // over MaxAttachments
		{`599999999999999999999-["x"]`, ErrInvalid},        // count far too long
		{`2` + long + `,["x"]`, ErrTooLarge},
		{`0` + long, ErrTooLarge},
	}
	for _, tt := range tests {
		if p, err := Decode([]byte(tt.in), Limits{}); !errors.Is(err, tt.want) {
			t.Errorf("Decode(%q) = %+v, %v; want %v", tt.in, p, err, tt.want)
		}
	}
	if _, err := Decode([]byte(`2["hello"]`), Limits{MaxPacketBytes: 5}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over MaxPacketBytes: err = %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, p := range []Packet{
		{Type: 9},
		{Type: Event},
		{Type: Event, Namespace: "admin", Data: json.RawMessage(`["x"]`)},
		{Type: Event, Namespace: "/a,b", Data: json.RawMessage(`["x"]`)},
		{Type: Ack, Data: json.RawMessage(`[]`)},
		{Type: Connect, HasID: true, ID: 1},
		{Type: Event, HasID: true, ID: MaxAckID + 1, Data: json.RawMessage(`["x"]`)},
		{Type: Event, Attachments: 1, Data: json.RawMessage(`["x",{"_placeholder":true,"num":0}]`)},
		{Type: BinaryEvent, Attachments: 2, Data: json.RawMessage(`["x",{"_placeholder":true,"num":0}]`)},
		{Type: BinaryEvent, Attachments: -1, Data: json.RawMessage(`["x"]`)},
		{Type: Disconnect, Data: json.RawMessage(`{}`)},
	} {
		if _, err := Encode(p); err == nil {
			t.Errorf("Encode(%+v) succeeded, want an error", p)
		}
	}
}

func TestReconstruct(t *testing.T) {
	p, err := Decode([]byte(`61-/admin,456[{"_placeholder":true,"num":0}]`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReconstructor(p, Limits{})
	if err != nil || r.Done() {
		t.Fatalf("NewReconstructor = %v, %v", r, err)
	}
	if _, _, err := r.Packet(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Packet before Done: err = %v", err)
	}
	buf := []byte{3, 2, 1}
	done, err := r.Add(buf)
	if err != nil || !done {
		t.Fatalf("Add = %v, %v", done, err)
	}
	buf[0] = 9 // Add copied it
	if _, err := r.Add([]byte{0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add after Done: err = %v", err)
	}
	got, atts, err := r.Packet()
	if err != nil || got.ID != 456 || len(atts) != 1 || !bytes.Equal(atts[0], []byte{3, 2, 1}) {
		t.Fatalf("Packet = %+v, %v, %v", got, atts, err)
	}
	v, err := Resolve(got.Data, atts)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{[]byte{3, 2, 1}}; !reflect.DeepEqual(v, want) {
		t.Fatalf("Resolve = %#v, want %#v", v, want)
	}

	if _, err := NewReconstructor(Packet{Type: Event}, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewReconstructor(EVENT): err = %v", err)
	}
	p, _ = Decode([]byte(`52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), Limits{})
	r, _ = NewReconstructor(p, Limits{MaxPacketBytes: 10})
	if done, err := r.Add(make([]byte, 6)); err != nil || done {
		t.Fatalf("first attachment: %v, %v", done, err)
	}
	if _, err := r.Add(make([]byte, 5)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("attachments over limit: err = %v", err)
	}
}

func TestDeconstructResolve(t *testing.T) {
	v := []any{"upload", map[string]any{"name": "a.bin", "parts": []any{[]byte{1, 2}, []byte{}}}, []byte{0xff}, json.Number("1.5"), true, nil}
	data, atts, err := Deconstruct(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `["upload",{"name":"a.bin","parts":[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":2},1.5,true,null]`
	if string(data) != want || len(atts) != 3 {
		t.Fatalf("Deconstruct = %s, %d attachments; want %s", data, len(atts), want)
	}
	p := Packet{Type: BinaryEvent, Attachments: len(atts), Data: data}
	enc, err := Encode(p)
	if err != nil || string(enc) != "53-"+want {
		t.Fatalf("Encode = %q, %v", enc, err)
	}
	back, err := Resolve(data, atts)
	if err != nil || !reflect.DeepEqual(back, v) {
		t.Fatalf("Resolve = %#v, %v; want %#v", back, err, v)
	}
	if _, _, err := Deconstruct([]any{"x", map[string]any{"_placeholder": true, "num": 0}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Deconstruct of a fake placeholder: err = %v", err)
	}
	if _, err := Resolve(data, atts[:2]); !errors.Is(err, ErrInvalid) {
		t.Errorf("Resolve with a missing attachment: err = %v", err)
	}
}

// Decode's Data is a copy; DecodeOwned's aliases the message it was
// handed, and is otherwise the same packet.
func TestDecodeOwnedAliases(t *testing.T) {
	msg := []byte(`2/admin,7["e",{"a":1}]`)
	copied, err := Decode(msg, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	owned, err := DecodeOwned(msg, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(copied, owned) {
		t.Fatalf("DecodeOwned = %+v, Decode %+v", owned, copied)
	}
	if &owned.Data[0] != &msg[len(msg)-len(owned.Data)] {
		t.Error("DecodeOwned's Data does not alias msg")
	}
	if &copied.Data[0] == &msg[len(msg)-len(copied.Data)] {
		t.Error("Decode's Data aliases msg")
	}
	if _, err := DecodeOwned([]byte(`2["connect"]`), Limits{}); err == nil {
		t.Error("DecodeOwned did not check the packet")
	}
}
