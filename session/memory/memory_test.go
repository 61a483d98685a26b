package memory

import (
	"testing"
	"unsafe"
)

// The single-node default keeps an entry per connection: 96 B is a
// malloc size class, the next one 112 B.
func TestEntryFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(entry{}); size > 96 {
		t.Errorf("entry is %d B: over the 96 B size class", size)
	}
}
