package socketio

import (
	"testing"
	"unsafe"
)

// Every idle Socket.IO connection served over transport/engineio holds a
// Client (whose conn is the Engine.IO session itself, and which is the
// session's Handler: no glue object apart) with its first Socket inside
// it, and a Socket apart per further namespace: keep them in their malloc
// size classes (128 B for the Client, 64 B for a Socket; the next ones
// are 144 B and 80 B). A Socket has no mutex of its own (its client's
// guards it: 56 B, so that a Client with one inside is 128 B), and a
// Client knows whether its first socket is in by a flag, not a pointer. What few sockets use (the auth payload, the pid,
// packets held during OnConnect, pending acks) is in socketExtra, made
// when first needed, and a socket holds its namespace as an index;
// likewise a client's connect timer, binary packet being received and
// sockets after the first are in clientExtra. BenchmarkConnect measures what a connect allocates.
func TestIdleObjectsFitSizeClasses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"Client", unsafe.Sizeof(Client{}), 128},
		{"Socket", unsafe.Sizeof(Socket{}), 56},
	} {
		if tt.size > tt.max {
			t.Errorf("%s is %d B: over the %d B size class", tt.name, tt.size, tt.max)
		}
	}
}
