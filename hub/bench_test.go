package hub_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldrt/herald/hub"
)

// BenchmarkLeaveJoin takes a member out of a room of n and puts it
// back: what a reconnect costs the room it was in.
func BenchmarkLeaveJoin(b *testing.B) {
	for _, n := range []int{16, 256, 1024, 4096, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h, _ := newHub(b)
			ctx := context.Background()
			ms := make([]hub.Member, n)
			for i := range ms {
				ms[i] = &member{}
				if _, err := h.Join(ctx, "r", ms[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				m := ms[(i*7919)%n]
				if err := h.Leave(ctx, "r", m); err != nil {
					b.Fatal(err)
				}
				if _, err := h.Join(ctx, "r", m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
