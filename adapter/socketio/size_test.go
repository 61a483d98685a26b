package socketio

import (
	"testing"
	"unsafe"
)

// Every idle Socket.IO connection served over transport/engineio holds a
// Client (whose conn is the Engine.IO session itself, and which is the
// session's Handler: no glue object apart) and a Socket per namespace:
// keep them in their malloc size classes (80 B and 64 B; the next ones
// are 96 B and 80 B). What few sockets use (the auth payload, the pid,
// packets held during OnConnect, pending acks) is in socketExtra, made
// when first needed, and a socket holds its namespace as an index;
// likewise a client's connect timer, binary packet being received and
// sockets after the first are in clientExtra. BenchmarkConnect measures what a connect allocates.
func TestIdleObjectsFitSizeClasses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"Client", unsafe.Sizeof(Client{}), 80},
		{"Socket", unsafe.Sizeof(Socket{}), 64},
	} {
		if tt.size > tt.max {
			t.Errorf("%s is %d B: over the %d B size class", tt.name, tt.size, tt.max)
		}
	}
}
