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

// TestNewPair: both ids of a pair are what New(n) makes, and differ, as
// do the pairs; the pair is one allocation.
func TestNewPair(t *testing.T) { // not parallel: AllocsPerRun
	seen := map[string]bool{}
	for _, n := range []int{5, 15, 16, 17, 32} {
		for range 200 {
			a, b := NewPair(n)
			for _, s := range []string{a, b} {
				if want := (n*8 + 4) / 5; len(s) != want {
					t.Fatalf("NewPair(%d) gave %q: %d characters, want %d", n, s, len(s), want)
				}
				if strings.Trim(s, "0123456789abcdefghjkmnpqrstvwxyz") != "" {
					t.Fatalf("NewPair(%d) gave %q: outside the alphabet", n, s)
				}
				if seen[s] {
					t.Fatalf("NewPair(%d) repeated %q", n, s)
				}
				seen[s] = true
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = NewPair(15) }); n != 1 {
		t.Errorf("NewPair(15) makes %v allocations, want 1", n)
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New(15)
	}
}
