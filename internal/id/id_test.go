package id

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, n := range []int{5, 10, 15, 16, 32, 33, 64} {
		for i := 0; i < 200; i++ {
			s := New(n)
			if want := (n*8 + 4) / 5; len(s) != want {
				t.Fatalf("New(%d) = %q: %d characters, want %d", n, s, len(s), want)
			}
			if strings.Trim(s, "0123456789abcdefghjkmnpqrstvwxyz") != "" {
				t.Fatalf("New(%d) = %q: outside the alphabet", n, s)
			}
			if seen[s] {
				t.Fatalf("New(%d) repeated %q", n, s)
			}
			seen[s] = true
		}
	}
	// Sixteen-byte ids all zero would mean unread or zeroed bytes handed out.
	for i := 0; i < 1000; i++ {
		if s := New(16); strings.Count(s, "0") > 20 {
			t.Fatalf("New(16) = %q", s)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New(15)
	}
}
