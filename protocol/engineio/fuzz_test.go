package engineio

import (
	"testing"
)

// FuzzDecodeText checks that any text packet decodes without panicking and
// that what decodes re-encodes to a packet that decodes to the same value.
func FuzzDecodeText(f *testing.F) {
	for _, s := range []string{"0{}", "1", "2probe", "3probe", "4hello", "5", "6", "bAQIDBA==", "b", "7", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := DecodeText(in)
		if err != nil {
			return
		}
		enc, err := EncodeText(p)
		if err != nil {
			t.Fatalf("EncodeText(%+v) after decode: %v", p, err)
		}
		q, err := DecodeText(enc)
		if err != nil || !equal(p, q) {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v, %v", in, p, enc, q, err)
		}
		if frame, bin, err := EncodeFrame(p); err != nil {
			t.Fatalf("EncodeFrame: %v", err)
		} else if r, err := DecodeFrame(frame, bin); err != nil || !equal(p, r) {
			t.Fatalf("frame round trip %+v -> %+v, %v", p, r, err)
		}
	})
}

// FuzzDecodePayload checks polling payloads: no panic, the size limit holds,
// and decode(encode(packets)) == packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello\x1ebAQIDBA==\x1e2\x1e6", "4a", "\x1e", "4a\x1e", "2\x1e3probe\x1e5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 4096
		ps, err := DecodePayload(in, limit)
		if err != nil {
			return
		}
		if len(in) > limit {
			t.Fatalf("accepted %d bytes over limit %d", len(in), limit)
		}
		enc, err := EncodePayload(ps)
		if err != nil {
			t.Fatalf("EncodePayload after decode: %v", err)
		}
		qs, err := DecodePayload(enc, 0)
		if err != nil || len(qs) != len(ps) {
			t.Fatalf("round trip: %d -> %d packets, %v", len(ps), len(qs), err)
		}
		for i := range ps {
			if !equal(ps[i], qs[i]) {
				t.Fatalf("packet %d: %+v != %+v", i, ps[i], qs[i])
			}
		}
	})
}

// FuzzDecodeHandshake checks that ParseHandshake never panics and that an
// accepted handshake survives OpenPacket and ParseHandshake unchanged.
func FuzzDecodeHandshake(f *testing.F) {
	f.Add([]byte(`{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`))
	f.Add([]byte(`{"sid":"x","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHandshake(in)
		if err != nil {
			return
		}
		p, err := OpenPacket(h)
		if err != nil {
			t.Fatalf("OpenPacket(%+v): %v", h, err)
		}
		g, err := ParseHandshake(p.Data)
		if err != nil || g.SID != h.SID || g.PingInterval != h.PingInterval || g.PingTimeout != h.PingTimeout ||
			g.MaxPayload != h.MaxPayload || len(g.Upgrades) != len(h.Upgrades) {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", h, p.Data, g, err)
		}
		for i := range h.Upgrades {
			if g.Upgrades[i] != h.Upgrades[i] {
				t.Fatalf("upgrade %d: %q != %q", i, g.Upgrades[i], h.Upgrades[i])
			}
		}
	})
}
