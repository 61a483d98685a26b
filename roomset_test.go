package herald

import (
	"fmt"
	"slices"
	"testing"
)

// TestRoomSet checks the sorted slice against a map under random joins
// and leaves.
func TestRoomSet(t *testing.T) {
	var rs roomSet
	want := map[string]bool{}
	// Every set handed out stays as it was: the session store keeps the
	// one it was saved with.
	type snapshot struct{ held, copied roomSet }
	var snaps []snapshot
	for i := range 2000 {
		snaps = append(snaps, snapshot{rs, slices.Clone(rs)})
		room := fmt.Sprint("room-", (i*7919)%97)
		if i%3 == 0 {
			if got := rs.remove(room); got != want[room] {
				t.Fatalf("remove(%s) = %v, want %v", room, got, want[room])
			}
			delete(want, room)
		} else {
			if got := rs.add(room); got == want[room] {
				t.Fatalf("add(%s) = %v with member %v", room, got, want[room])
			}
			want[room] = true
		}
		if len(rs) != len(want) || !slices.IsSorted(rs) {
			t.Fatalf("after %d ops: %d rooms (sorted %v), want %d", i, len(rs), slices.IsSorted(rs), len(want))
		}
		for r := range want {
			if !rs.has(r) {
				t.Fatalf("after %d ops: %s missing", i, r)
			}
		}
	}
	for i, sn := range snaps {
		if !slices.Equal(sn.held, sn.copied) {
			t.Fatalf("the set before op %d changed in place: %v, was %v", i, sn.held, sn.copied)
		}
	}
}
