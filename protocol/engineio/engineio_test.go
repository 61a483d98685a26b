package engineio

import (
	"bytes"
	"errors"
	"testing"
)

// The examples of the Engine.IO v4 specification.
func TestDecodeTextSpecExamples(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
	}{
		{`0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`,
			Packet{Type: Open, Data: []byte(`{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)}},
		{"1", Packet{Type: Close}},
		{"2", Packet{Type: Ping}},
		{"2probe", Packet{Type: Ping, Data: []byte("probe")}},
		{"3probe", Packet{Type: Pong, Data: []byte("probe")}},
		{"4hello", Packet{Type: Message, Data: []byte("hello")}},
		{"4", Packet{Type: Message}},
		{"5", Packet{Type: Upgrade}},
		{"6", Packet{Type: Noop}},
		{"bAQIDBA==", Packet{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true}},
		{"b", Packet{Type: Message, Data: []byte{}, Binary: true}},
	}
	for _, tt := range tests {
		got, err := DecodeText([]byte(tt.in))
		if err != nil {
			t.Errorf("DecodeText(%q): %v", tt.in, err)
			continue
		}
		if !equal(got, tt.want) {
			t.Errorf("DecodeText(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		enc, err := EncodeText(got)
		if err != nil || string(enc) != tt.in {
			t.Errorf("EncodeText(%+v) = %q, %v; want %q", got, enc, err, tt.in)
		}
	}
}

func TestDecodeTextRejects(t *testing.T) {
	for _, in := range []string{"", "7", "9hello", "x", "/", "\x00", "b!!!", "bAQI", "bAQIDBA=\x1e", "bAQID\nBA=="} {
		if p, err := DecodeText([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeText(%q) = %+v, %v; want ErrInvalid", in, p, err)
		}
	}
}

func TestWebSocketFrames(t *testing.T) {
	p := DecodeBinary([]byte{1, 2, 3, 4})
	if !equal(p, Packet{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true}) {
		t.Fatalf("DecodeBinary = %+v", p)
	}
	frame, bin, err := EncodeFrame(p)
	if err != nil || !bin || !bytes.Equal(frame, []byte{1, 2, 3, 4}) {
		t.Fatalf("EncodeFrame(binary) = %v, %v, %v", frame, bin, err)
	}
	frame, bin, err = EncodeFrame(Packet{Type: Message, Data: []byte("hello")})
	if err != nil || bin || string(frame) != "4hello" {
		t.Fatalf("EncodeFrame(text) = %q, %v, %v", frame, bin, err)
	}
	got, err := DecodeFrame([]byte("2probe"), false)
	if err != nil || !equal(got, Packet{Type: Ping, Data: []byte("probe")}) {
		t.Fatalf("DecodeFrame(text) = %+v, %v", got, err)
	}
	// A text frame starting with 'b' is a base64 binary message, as in the reference parser.
	got, err = DecodeFrame([]byte("bAQIDBA=="), false)
	if err != nil || !got.Binary {
		t.Fatalf("DecodeFrame(b64) = %+v, %v", got, err)
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, p := range []Packet{{Type: 7}, {Type: Ping, Binary: true}, {Type: Open, Data: []byte{1}, Binary: true}} {
		if _, err := EncodeText(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("EncodeText(%+v) err = %v, want ErrInvalid", p, err)
		}
		if _, _, err := EncodeFrame(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("EncodeFrame(%+v) err = %v, want ErrInvalid", p, err)
		}
	}
}

func TestPayloadSpecExamples(t *testing.T) {
	body := "4hello\x1ebAQIDBA==\x1e2\x1e6"
	want := []Packet{
		{Type: Message, Data: []byte("hello")},
		{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true},
		{Type: Ping},
		{Type: Noop},
	}
	got, err := DecodePayload([]byte(body), DefaultMaxPayload)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if !equal(got[i], want[i]) {
			t.Errorf("packet %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	enc, err := EncodePayload(got)
	if err != nil || string(enc) != body {
		t.Fatalf("EncodePayload = %q, %v; want %q", enc, err, body)
	}
}

func TestPayloadRejects(t *testing.T) {
	for _, in := range []string{"", "\x1e", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "4a\x1e7"} {
		if _, err := DecodePayload([]byte(in), 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodePayload(%q) err = %v, want ErrInvalid", in, err)
		}
	}
	if _, err := DecodePayload([]byte("4hello"), 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over maxPayload: err = %v, want ErrTooLarge", err)
	}
	if _, err := DecodePayload([]byte("4hello"), 6); err != nil {
		t.Errorf("at maxPayload: %v", err)
	}
	if _, err := EncodePayload(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("EncodePayload(nil) err = %v", err)
	}
	if _, err := EncodePayload([]Packet{{Type: Message, Data: []byte("a\x1eb")}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("separator in text data: err = %v", err)
	}
	// Binary data may hold the separator byte: base64 hides it.
	if _, err := EncodePayload([]Packet{{Type: Message, Data: []byte{RecordSeparator}, Binary: true}}); err != nil {
		t.Errorf("separator in binary data: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	const spec = `{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	h, err := ParseHandshake([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	want := Handshake{SID: "lv_VI97HAXpY6yYWAAAC", Upgrades: []string{"websocket"}, PingInterval: 25000, PingTimeout: 20000, MaxPayload: 1000000}
	if h.SID != want.SID || len(h.Upgrades) != 1 || h.Upgrades[0] != "websocket" || h.PingInterval != want.PingInterval || h.PingTimeout != want.PingTimeout || h.MaxPayload != want.MaxPayload {
		t.Fatalf("ParseHandshake = %+v", h)
	}
	p, err := OpenPacket(want)
	if err != nil || p.Type != Open || string(p.Data) != spec {
		t.Fatalf("OpenPacket = %+v (%s), %v; want %s", p, p.Data, err, spec)
	}
	p, err = OpenPacket(Handshake{SID: "x", PingInterval: 1, PingTimeout: 1, MaxPayload: 1})
	if err != nil || string(p.Data) != `{"sid":"x","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}` {
		t.Fatalf("OpenPacket without upgrades = %s, %v", p.Data, err)
	}
	if _, err := OpenPacket(Handshake{PingInterval: 1, PingTimeout: 1, MaxPayload: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty sid: err = %v", err)
	}
	for _, bad := range []string{
		``, `[]`, `null`, `{}`,
		`{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1}`,
		`{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1,"extra":1}`,
		`{"sid":"a","upgrades":null,"pingInterval":1,"pingTimeout":1,"maxPayload":1}`,
		`{"sid":1,"upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}`,
		`{"sid":"a","upgrades":[],"pingInterval":0,"pingTimeout":1,"maxPayload":1}`,
		`{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}x`,
	} {
		if _, err := ParseHandshake([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseHandshake(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
}

func equal(a, b Packet) bool {
	return a.Type == b.Type && a.Binary == b.Binary && bytes.Equal(a.Data, b.Data)
}
