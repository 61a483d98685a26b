package socketio

import (
	"testing"
	"unsafe"
)

// Every idle Socket.IO connection served over transport/engineio holds
// an engineConn (its Client inline) and a Socket per namespace: keep
// them in their malloc size classes (128 B each; the next one is 144 B). BenchmarkConnect measures what a connect allocates.
func TestIdleObjectsFitSizeClasses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"engineConn", unsafe.Sizeof(engineConn{}), 128},
		{"Socket", unsafe.Sizeof(Socket{}), 128},
	} {
		if tt.size > tt.max {
			t.Errorf("%s is %d B: over the %d B size class", tt.name, tt.size, tt.max)
		}
	}
}
