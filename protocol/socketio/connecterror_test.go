package socketio

import (
	"errors"
	"testing"
)

func TestConnectErrorPacket(t *testing.T) {
	p, err := ConnectErrorPacket("/foo", InvalidNamespace)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(p)
	if err != nil || string(enc) != `4/foo,{"message":"Invalid namespace"}` {
		t.Fatalf("Encode = %q, %v", enc, err)
	}
	p, _ = ConnectErrorPacket("/", "Not authorized")
	if enc, _ := Encode(p); string(enc) != `4{"message":"Not authorized"}` {
		t.Fatalf("Encode = %q", enc)
	}
	if _, err := ConnectErrorPacket("no-slash", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad namespace: err = %v", err)
	}
}
