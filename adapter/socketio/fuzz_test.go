package socketio

import (
	"bytes"
	"context"
	"testing"
)

// FuzzClient feeds a client any sequence of messages, text and binary,
// split from the input at 0x1e (a 'b' prefix makes a piece binary): the
// adapter must answer or close, never panic, and hold nothing after the
// close.
func FuzzClient(f *testing.F) {
	for _, seed := range []string{
		"0\x1e2[\"message\",1]\x1e2456[\"message-with-ack\",{}]",
		"0/custom,\x1e1/custom,\x1e0/custom,{\"a\":1}",
		"0\x1e52-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]\x1eb\x01\x02\x1eb\x03",
		"0\x1e62-1[{\"_placeholder\":true,\"num\":0}]\x1ebx",
		"4abc", "2{}", "0\x1e0", "0/random\x1e0", "b\x00", "0\x1e30[]\x1e3999[1]",
	} {
		f.Add([]byte(seed))
	}
	srv, err := New(echoConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := newMemConn()
		c := srv.Accept(context.Background(), conn)
		defer c.HandleClose("fuzz over")
		if s := c.Socket("/"); s != nil {
			t.Fatal("socket before CONNECT")
		}
		for _, m := range bytes.Split(in, []byte{0x1e}) {
			if len(m) > 0 && m[0] == 'b' {
				c.HandleBinary(m[1:])
			} else {
				c.HandleText(m)
			}
		}
		// Server-side sends on whatever is left must not panic either.
		for _, ns := range []string{"/", "/custom"} {
			if s := c.Socket(ns); s != nil {
				_ = s.Emit("x", MustValues([]byte{1}))
				_ = s.EmitWithAck("y", Args{}, 0, func(Args, error) {})
			}
		}
		c.HandleClose("fuzz over")
		if c.Socket("/") != nil || c.Socket("/custom") != nil {
			t.Fatal("sockets left after the close")
		}
	})
}
