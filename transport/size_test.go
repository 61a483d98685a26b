package transport

import (
	"testing"
	"unsafe"
)

// Every idle connection holds a Conn, so its size is most of what the
// transport costs per connection. 512 B is a malloc size class; the next
// one is 576 B.
func TestConnFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 512 {
		t.Errorf("Conn is %d B: over the 512 B size class (each idle connection would cost 576 B)", size)
	}
	// Send touches only the first cache line (see Conn).
	if end := unsafe.Offsetof(Conn{}.shard) + unsafe.Sizeof(Conn{}.shard); end > 64 {
		t.Errorf("Send's fields end at byte %d, past the first cache line", end)
	}
}
