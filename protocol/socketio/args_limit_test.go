package socketio

import (
	"errors"
	"strings"
	"testing"
)

// An event's or ack's array may have at most Limits.MaxArgs elements:
// split into json.RawMessages, each costs 24 B for as little as 2 B of
// packet, so a 1 MB packet of one-digit arguments made a 12 MB slice.
func TestDecodeBoundsArgs(t *testing.T) {
	args := func(n int) string { return strings.TrimSuffix(strings.Repeat("0,", n), ",") }
	for _, tc := range []struct {
		name string
		msg  string
		ok   bool
	}{
		{name: "event at the limit", msg: `2["e",` + args(1023) + `]`, ok: true},
		{name: "event over the limit", msg: `2["e",` + args(1024) + `]`},
		{name: "ack over the limit", msg: `31[` + args(1025) + `]`},
		{name: "binary event over the limit", msg: `51-["e",{"_placeholder":true,"num":0},` + args(1023) + `]`},
		{name: "one array argument of many elements", msg: `2["e",[` + args(100_000) + `]]`, ok: true},
		{name: "half a megabyte of arguments", msg: `2["e",` + args(250_000) + `]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.msg), Limits{})
			if tc.ok && err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode = %v, want ErrTooLarge", err)
			}
		})
	}
	if n := countElements([]byte(` [ 1 , [2,3] , {"a":[4]} , "x,]" ] `), 10); n != 4 {
		t.Fatalf("countElements = %d, want 4", n)
	}
	if n := countElements([]byte(`[]`), 10); n != 0 {
		t.Fatalf("countElements([]) = %d", n)
	}
}
