package storm

import (
	"slices"
	"testing"
)

func TestOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		i, n int
		want []int
	}{
		{"one node", 5, 1, []int{0}},
		{"home 0, first turn", 0, 3, []int{0, 1, 2}},
		{"home 0, second turn", 3, 3, []int{0, 2, 1}},
		{"home 2, first turn", 2, 3, []int{2, 0, 1}},
		{"home 2, second turn", 5, 3, []int{2, 1, 0}},
		{"home 1 of 4, third turn", 9, 4, []int{1, 0, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := order(tt.i, tt.n); !slices.Equal(got, tt.want) {
				t.Fatalf("order(%d, %d) = %v, want %v", tt.i, tt.n, got, tt.want)
			}
		})
	}
	// The clients of a node that goes away spread evenly over the rest.
	next := map[int]int{}
	for i := 0; i < 3000; i += 3 {
		next[order(i, 3)[1]]++
	}
	if next[1] != 500 || next[2] != 500 {
		t.Fatalf("node 0's clients go on to %v, want 500 each to 1 and 2", next)
	}
}

func TestTally(t *testing.T) {
	t.Parallel()
	tl := newTally()
	for _, n := range []int64{0, 1, 2, 5, 4, 4, 70, 130} {
		tl.add(n)
	}
	if tl.dup != 1 || tl.ooo != 1 || tl.deliveries != 7 {
		t.Fatalf("dup %d, out of order %d, deliveries %d; want 1, 1, 7", tl.dup, tl.ooo, tl.deliveries)
	}
	tests := []struct {
		name      string
		published int64
		skip      map[int64]bool
		want      int64
	}{
		{"none published", 0, nil, 0},
		{"first three", 3, nil, 0},
		{"up to 5", 6, nil, 1},        // 3
		{"up to 70", 71, nil, 71 - 6}, // 3, 6…69
		{"with a gap given up", 71, map[int64]bool{3: true, 1: true}, 71 - 6 - 1},
		{"past what was seen", 200, nil, 200 - 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tl.missing(tt.published, tt.skip); got != tt.want {
				t.Fatalf("missing(%d) = %d, want %d", tt.published, got, tt.want)
			}
		})
	}
}
