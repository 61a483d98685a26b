package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		wantType string
		wantCode string
		wantID   string
	}{
		{"join", `{"type":"join","id":"1","room":"chat"}`, TypeJoin, "", `"1"`},
		{"numeric id", `{"type":"leave","id":42,"room":"chat"}`, TypeLeave, "", `42`},
		{"publish", `{"type":"publish","room":"r","event":"e","data":{"a":[1,2]}}`, TypePublish, "", ""},
		{"emit", `{"type":"emit","id":"e","event":"typing"}`, TypeEmit, "", `"e"`},
		{"ack", `{"type":"ack","msgIds":["a","b"]}`, TypeAck, "", ""},
		{"ping", `{"type":"ping","id":"hb-1"}`, TypePing, "", `"hb-1"`},
		{"extra fields ignored", `{"type":"join","room":"r","future":true}`, TypeJoin, "", ""},
		{"leading space", `  {"type":"join","room":"r"}`, TypeJoin, "", ""},
		{"empty", ``, "", CodeBadMessage, ""},
		{"array", `[]`, "", CodeBadMessage, ""},
		{"string", `"join"`, "", CodeBadMessage, ""},
		{"truncated", `{"type":"join"`, "", CodeBadMessage, ""},
		{"no type", `{"id":1}`, "", CodeBadMessage, `1`},
		{"type not string", `{"type":1,"id":"x"}`, "", CodeBadMessage, `"x"`},
		{"unknown type", `{"type":"fly","id":"x"}`, "", CodeUnknownType, `"x"`},
		{"join without room", `{"type":"join","id":2}`, "", CodeBadRequest, `2`},
		{"room too long", `{"type":"join","room":"` + strings.Repeat("r", MaxRoomLen+1) + `"}`, "", CodeBadRequest, ""},
		{"room with newline", `{"type":"join","room":"a\nb"}`, "", CodeBadRequest, ""},
		{"room with DEL", `{"type":"join","room":"a\u007fb"}`, "", CodeBadRequest, ""},
		{"room with C1 control", `{"type":"join","room":"a\u0085b"}`, "", CodeBadRequest, ""},
		{"event with C1 control", `{"type":"publish","room":"r","event":"e\u009b"}`, "", CodeBadRequest, ""},
		{"room with a lone low surrogate", `{"type":"join","id":3,"room":"a\udc00b"}`, "", CodeBadMessage, `3`},
		{"room with a lone high surrogate", `{"type":"join","room":"a\ud800b"}`, "", CodeBadMessage, ""},
		{"room with a high surrogate at the end", `{"type":"join","room":"a\ud800"}`, "", CodeBadMessage, ""},
		{"data with a lone surrogate", `{"type":"publish","room":"r","event":"e","data":"\udfff"}`, "", CodeBadMessage, ""},
		{"room with a surrogate pair", `{"type":"join","room":"a\ud83d\ude00b"}`, TypeJoin, "", ""},
		{"escaped backslash before u", `{"type":"join","room":"a\\ud800"}`, TypeJoin, "", ""},
		{"room with non-ASCII letters", `{"type":"join","room":"café:ü"}`, TypeJoin, "", ""},
		{"publish without event", `{"type":"publish","room":"r"}`, "", CodeBadRequest, ""},
		{"emit without event", `{"type":"emit"}`, "", CodeBadRequest, ""},
		{"ack without ids", `{"type":"ack","msgIds":[]}`, "", CodeBadRequest, ""},
		{"ack ids not strings", `{"type":"ack","msgIds":[1]}`, "", CodeBadMessage, ""},
		{"id object", `{"type":"join","room":"r","id":{}}`, "", CodeBadRequest, ""},
		{"id too long", `{"type":"join","room":"r","id":"` + strings.Repeat("i", MaxIDLen+1) + `"}`, "", CodeBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Decode([]byte(tt.in))
			if tt.wantCode != "" {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want *Error %s", err, tt.wantCode)
				}
				if pe.Code != tt.wantCode || string(pe.ID) != tt.wantID || pe.Message == "" {
					t.Fatalf("got %s id=%s %q, want %s id=%s", pe.Code, pe.ID, pe.Message, tt.wantCode, tt.wantID)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if r.Type != tt.wantType || string(r.ID) != tt.wantID {
				t.Fatalf("got type %s id %s", r.Type, r.ID)
			}
		})
	}
}

func TestAppendEventIsValidJSON(t *testing.T) {
	t.Parallel()
	ev := &Event{Room: "a\"b\\c\n\u2028<>&\xff", Event: "e\x01", Data: json.RawMessage(`{"x":1}`), MsgID: "m-1", Offset: 7, Epoch: "ep", Ack: true, From: "u\"1", TS: 123}
	b := AppendEvent(nil, ev)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	if got["type"] != "event" || got["room"] != "a\"b\\c\n\u2028<>&\ufffd" || got["event"] != "e\x01" ||
		got["msgId"] != "m-1" || got["offset"] != float64(7) || got["ack"] != true || got["ts"] != float64(123) || got["from"] != "u\"1" {
		t.Fatalf("round trip: %v", got)
	}
}

func TestEncodeFrames(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{
		EncodeWelcome(Welcome{ConnectionID: "c", HeartbeatMs: 30000}),
		EncodeReply(json.RawMessage(`7`), json.RawMessage(`{"ok":true}`)),
		EncodeError(nil, CodeBadMessage, "nope"),
		EncodeServerShutdown(1500, "bye"),
	} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m["type"] == nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
}

// FuzzDecode checks that no input makes the decoder panic, and that what it
// accepts is well formed.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","id":"1","room":"chat"}`,
		`{"type":"publish","id":2,"room":"r","event":"e","data":{"a":[1,"x",null]}}`,
		`{"type":"ack","msgIds":["a","b"]}`,
		`{"type":"emit","event":"e","data":"\u00e9"}`,
		`{"type":1}`, `[]`, `{`, `{"type":"join","room":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code == "" {
				t.Fatalf("error is not a protocol error: %v", err)
			}
			// The error frame built from it must be valid JSON.
			if !json.Valid(EncodeError(pe.ID, pe.Code, pe.Message)) {
				t.Fatalf("error frame invalid for %q", b)
			}
			return
		}
		switch r.Type {
		case TypeJoin, TypeLeave, TypePublish:
			if ValidateRoom(r.Room) != nil || !utf8.ValidString(r.Room) {
				t.Fatalf("accepted bad room %q", r.Room)
			}
		case TypeEmit, TypeAck, TypeRefresh:
		default:
			t.Fatalf("accepted unknown type %q", r.Type)
		}
		if len(r.Data) > 0 && !json.Valid(r.Data) {
			t.Fatalf("accepted invalid data %q", r.Data)
		}
		ev := AppendEvent(nil, &Event{Room: r.Room, Event: r.Event, Data: r.Data})
		if !json.Valid(ev) {
			t.Fatalf("event built from accepted input is invalid JSON: %s", ev)
		}
	})
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
	}{
		{`{"room":"caf\u00e9"}`, nil},
		{`{"room":"café"}`, nil},
		{"{\"room\":\"a\xffb\"}", ErrInvalidUTF8},
		{"{\"room\":\"\xed\xa0\x80\"}", ErrInvalidUTF8}, // a surrogate encoded in UTF-8
		{`{"room":"\udc00"}`, ErrLoneSurrogate},
		{`{"room":"\ud800\u0041"}`, ErrLoneSurrogate},
		{`{"room":"\\\ud800"}`, ErrLoneSurrogate},
		{`{"room":"\\\\ud800"}`, nil},
		{`{"room":"\ud83d\ude00"}`, nil},
		{`{"room":"\u12"}`, nil}, // not JSON: left to the decoder
	}
	for _, tt := range tests {
		if got := CheckText([]byte(tt.in)); !errors.Is(got, tt.want) {
			t.Errorf("CheckText(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// DecodeAs decodes an object without its type as the request of the type
// given, with Decode's checks; a type of the object's own is kept.
func TestDecodeAs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, typ, in string
		wantType      string
		wantCode      string
	}{
		{"join", TypeJoin, `{"room":"chat"}`, TypeJoin, ""},
		{"checked as its type", TypeJoin, `{}`, "", CodeBadRequest},
		{"own type kept", TypeJoin, `{"type":"leave","room":"chat"}`, TypeLeave, ""},
		{"same type", TypeLeave, `{"type":"leave","room":"chat"}`, TypeLeave, ""},
		{"not an object", TypeJoin, `[]`, "", CodeBadMessage},
		{"no type at all", "", `{"room":"chat"}`, "", CodeBadMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeAs(tt.typ, []byte(tt.in))
			if tt.wantCode != "" {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != tt.wantCode {
					t.Fatalf("DecodeAs(%q, %s) = %v, want code %s", tt.typ, tt.in, err, tt.wantCode)
				}
				return
			}
			if err != nil || r.Type != tt.wantType {
				t.Fatalf("DecodeAs(%q, %s) = %+v, %v; want type %s", tt.typ, tt.in, r, err, tt.wantType)
			}
		})
	}
}
