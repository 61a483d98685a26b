package transport

import (
	"testing"
	"unsafe"
)

// Every idle connection holds a Conn, so its size is most of what the
// transport costs per connection. 320 B is a malloc size class; the next
// one is 352 B. State that only closing, a blocked write or a fragmented
// or compressed message needs is made when it is needed.
func TestConnFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 320 {
		t.Errorf("Conn is %d B: over the 320 B size class (each idle connection would cost 352 B)", size)
	}
	// Send touches only the first cache line (see Conn).
	if end := unsafe.Offsetof(Conn{}.shard) + unsafe.Sizeof(Conn{}.shard); end > 64 {
		t.Errorf("Send's fields end at byte %d, past the first cache line", end)
	}
}
