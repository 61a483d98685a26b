package transport

import (
	"runtime"
	"testing"
)

// A small compressed message that inflates to far more than the limit
// (a decompression bomb) is cut while it is inflated: inflate allocates
// the limit and, when its pool has none, a flate reader (about 40 KB and
// a 32 KiB window; the race detector's pool drops some), whatever the
// message would inflate to. The reader goes back to the pool: no
// connection keeps one; nor does the output's charge in the read budget
// outlive the refusal.
func TestInflateCutsABombAtTheLimit(t *testing.T) {
	const limit = 64 << 10
	bomb := deflateBytes(t, make([]byte, 16<<20), 9) // 16 MiB of zeros in about 16 KB
	var src inflateSource
	budget := NewReadBudget(1 << 20)
	var charged int64
	if _, err := inflate(&src, bomb, nil, limit, budget, &charged); err != errTooBig {
		t.Fatalf("inflate = %v, want errTooBig", err)
	}
	if charged != 0 || budget.Used() != 0 {
		t.Fatalf("after the refusal: charged %d B, budget counts %d B, want 0", charged, budget.Used())
	}
	const runs = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := inflate(&src, bomb, nil, limit, budget, &charged); err != errTooBig {
			t.Fatalf("inflate = %v, want errTooBig", err)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d B compressed, 16 MiB inflated: %d B allocated a message under a %d B limit", len(bomb), per, limit)
	if per > limit+256<<10 {
		t.Fatalf("inflating the bomb allocated %d B a message, over the %d B limit and a flate reader", per, limit)
	}
}
