package storm

import (
	"math/bits"
	"sync"
)

// tally counts the numbered messages one client received in its room:
// which numbers (a bitset), how many twice, how many after a higher one.
type tally struct {
	mu         sync.Mutex
	seen       []uint64
	max        int64
	dup, ooo   int64
	deliveries int64
}

func newTally() tally { return tally{max: -1} }

// add records message number seq.
func (t *tally) add(seq int64) {
	if seq < 0 || seq > 1<<24 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w, b := int(seq/64), uint(seq%64)
	for len(t.seen) <= w {
		t.seen = append(t.seen, 0)
	}
	if t.seen[w]&(1<<b) != 0 {
		t.dup++
		return
	}
	t.seen[w] |= 1 << b
	t.deliveries++
	if seq < t.max {
		t.ooo++
	} else {
		t.max = seq
	}
}

// missing returns how many of the numbers 0 … published-1 (skipping those
// in skip) the client has not received.
func (t *tally) missing(published int64, skip map[int64]bool) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var got int64
	full := int(published / 64)
	for w := 0; w < full && w < len(t.seen); w++ {
		got += int64(bits.OnesCount64(t.seen[w]))
	}
	if rest := published % 64; rest > 0 && full < len(t.seen) {
		got += int64(bits.OnesCount64(t.seen[full] & (1<<uint(rest) - 1)))
	}
	var skipped int64
	for s := range skip {
		if s < published && (int(s/64) >= len(t.seen) || t.seen[s/64]&(1<<uint(s%64)) == 0) {
			skipped++
		}
	}
	return published - got - skipped
}
