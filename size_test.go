package herald

import (
	"testing"
	"unsafe"
)

// Every idle connection holds a conn next to its transport.Conn (see
// transport's TestConnFitsSizeClass): 288 B is a malloc size class, the
// next one 320 B.
func TestConnFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(conn{}); size > 288 {
		t.Errorf("conn is %d B: over the 288 B size class (each idle connection would cost 320 B)", size)
	}
}
