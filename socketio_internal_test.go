package herald

import (
	"encoding/json"
	"testing"

	"github.com/heraldrt/herald/adapter/socketio"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// A room message is one Engine.IO message holding a Socket.IO EVENT of
// the codec's namespace, after the frame's headroom, with the offset
// argument only for a message with a position and recovery on.
func TestSioCodec(t *testing.T) {
	m := &broker.Message{Room: "h:x", Event: "news", Data: json.RawMessage(`{"a":1}`), Offset: 7, Epoch: "e1"}
	tests := []struct {
		name  string
		codec sioCodec
		msg   *broker.Message
		want  string
	}{
		{name: "main namespace", codec: sioCodec{ns: "/", slot: 1}, msg: m, want: `42["news",{"a":1}]`},
		{name: "other namespace", codec: sioCodec{ns: "/chat", slot: 2}, msg: m, want: `42/chat,["news",{"a":1}]`},
		{name: "no data", codec: sioCodec{ns: "/", slot: 1}, msg: &broker.Message{Room: "r", Event: "ping"}, want: `42["ping"]`},
		{name: "recovery", codec: sioCodec{ns: "/", slot: 1, recovery: true}, msg: m, want: `42["news",{"a":1},"o=7&e=e1&r=h%3Ax"]`},
		{name: "recovery with a msgId", codec: sioCodec{ns: "/", slot: 1, recovery: true},
			msg: &broker.Message{Room: "h:x", Event: "news", MsgID: "m-1", Offset: 7, Epoch: "e1"}, want: `42["news","o=7&e=e1&r=h%3Ax&i=m-1"]`},
		{name: "recovery without a position", codec: sioCodec{ns: "/", slot: 1, recovery: true},
			msg: &broker.Message{Room: "r", Event: "e", Data: json.RawMessage(`"s"`)}, want: `42["e","s"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, b := tt.codec.Encode(tt.msg)
			if typ != transport.Text || len(b) < transport.FrameHeadroom || string(b[transport.FrameHeadroom:]) != tt.want {
				t.Fatalf("Encode = %v %q, want %q", typ, b[min(len(b), transport.FrameHeadroom):], tt.want)
			}
		})
	}
}

func TestSioOffsetRoundTrip(t *testing.T) {
	for _, room := range []string{"h:x", "a&b=c", "ünï code", "r/s?t"} {
		pos := broker.Position{Offset: 42, Epoch: "ep&=och", MsgID: "m&=1"}
		got, gotPos, ok := decodeSioOffset(encodeSioOffset(room, pos))
		if !ok || got != room || gotPos != pos {
			t.Errorf("%q: round trip = %q %v %v", room, got, gotPos, ok)
		}
	}
	for _, bad := range []string{"", "hello", "o=0&r=x", "o=x&r=x", "o=1&r=", "o=1", "%zz"} {
		if _, _, ok := decodeSioOffset(bad); ok {
			t.Errorf("%q decoded", bad)
		}
	}
}

// herald:* events take one JSON object with the v1 request's fields and
// its checks; the object cannot change the request's type.
func TestSioRequest(t *testing.T) {
	args := func(s ...string) socketio.Args {
		var a socketio.Args
		for _, x := range s {
			a.JSON = append(a.JSON, json.RawMessage(x))
		}
		return a
	}
	tests := []struct {
		name, typ string
		args      socketio.Args
		code      string // "" for success
		room      string
	}{
		{name: "join", typ: protocol.TypeJoin, args: args(`{"room":"a"}`), room: "a"},
		{name: "join with spaces", typ: protocol.TypeJoin, args: args(` { "room" : "a" } `), room: "a"},
		{name: "ping without args", typ: protocol.TypePing, args: args()},
		{name: "ping with an empty object", typ: protocol.TypePing, args: args(`{}`)},
		{name: "no room", typ: protocol.TypeJoin, args: args(`{}`), code: protocol.CodeBadRequest},
		{name: "not an object", typ: protocol.TypeJoin, args: args(`"a"`), code: protocol.CodeBadRequest},
		{name: "two args", typ: protocol.TypeJoin, args: args(`{"room":"a"}`, `1`), code: protocol.CodeBadRequest},
		{name: "binary", typ: protocol.TypeJoin, args: socketio.Args{JSON: args(`{"room":"a"}`).JSON, Binary: [][]byte{{1}}}, code: protocol.CodeBadRequest},
		{name: "type smuggled", typ: protocol.TypeJoin, args: args(`{"type":"publish","room":"a","event":"e"}`), code: protocol.CodeBadRequest},
		{name: "bad JSON", typ: protocol.TypeJoin, args: args(`{"room":}`), code: protocol.CodeBadMessage},
		{name: "ack without ids", typ: protocol.TypeAck, args: args(`{"msgIds":[]}`), code: protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := sioRequest(tt.typ, tt.args)
			if tt.code == "" {
				if err != nil || req.Type != tt.typ || req.Room != tt.room || req.ID != nil {
					t.Fatalf("sioRequest = %+v, %v", req, err)
				}
				return
			}
			pe, ok := err.(*protocol.Error)
			if !ok || pe.Code != tt.code {
				t.Fatalf("sioRequest error = %v, want code %s", err, tt.code)
			}
		})
	}
}

func TestSioEventData(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, ""}, {[]string{`null`}, ""}, {[]string{`{"a":1}`}, `{"a":1}`}, {[]string{`1`, `"x"`}, `[1,"x"]`},
	} {
		var a []json.RawMessage
		for _, x := range tt.args {
			a = append(a, json.RawMessage(x))
		}
		if got := string(sioEventData(a)); got != tt.want {
			t.Errorf("sioEventData(%v) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// The decoders of what a Socket.IO client sends the core never panic and
// accept only what they can answer.
func FuzzSioRequest(f *testing.F) {
	for _, s := range []string{`{"room":"a"}`, `{}`, `{"type":"x"}`, `{"room":"a","offset":3,"epoch":"e"}`, `[`, `{"msgIds":["a"]}`} {
		f.Add(protocol.TypeJoin, s)
		f.Add(protocol.TypeAck, s)
	}
	f.Fuzz(func(t *testing.T, typ, arg string) {
		req, err := sioRequest(typ, socketio.Args{JSON: []json.RawMessage{json.RawMessage(arg)}})
		if err == nil && (req.Type != typ || req.ID != nil) {
			t.Fatalf("sioRequest(%q, %q) = %+v", typ, arg, req)
		}
	})
}

func FuzzSioOffset(f *testing.F) {
	f.Add(encodeSioOffset("h:x", broker.Position{Offset: 1, Epoch: "e"}))
	f.Add("o=1&r=a&e=")
	f.Fuzz(func(t *testing.T, s string) {
		room, pos, ok := decodeSioOffset(s)
		if ok && (protocol.ValidateRoom(room) != nil || pos.Offset == 0) {
			t.Fatalf("decodeSioOffset(%q) = %q %v", s, room, pos)
		}
	})
}

// A link's refs answer their own requests, in any order, once each; a
// link with none waiting holds nothing for them.
func TestSioLinkRefs(t *testing.T) {
	l := &sioLink{}
	got := map[int]int{}
	ack := func(i int) socketio.AckFunc {
		return func(socketio.Args) error { got[i]++; return nil }
	}
	if l.ref(nil) != nil {
		t.Fatal("a request without an ack got a ref")
	}
	r1, r2, r3 := l.ref(ack(1)), l.ref(ack(2)), l.ref(ack(3))
	for _, r := range []json.RawMessage{r2, r1, r3, r2, json.RawMessage("99"), json.RawMessage("x")} {
		if a := l.takeAck(r); a != nil {
			_ = a(socketio.Args{})
		}
	}
	if got[1] != 1 || got[2] != 1 || got[3] != 1 || len(got) != 3 {
		t.Errorf("acks called %v, want each of 1, 2, 3 once", got)
	}
	if l.acks != nil {
		t.Error("the link holds its refs with none waiting")
	}
	a4 := ack(4)
	if n := testing.AllocsPerRun(100, func() { l.takeAck(l.ref(a4)) }); n > 2 {
		t.Errorf("a request answered in order allocates %v times, want 2 at most (its refs and its ref)", n)
	}
}
