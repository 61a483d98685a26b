package loadgen

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []int64
		q      float64
		want   int64
	}{
		{name: "empty", values: nil, q: 0.5, want: 0},
		{name: "single", values: []int64{42}, q: 0.99, want: 42},
		{name: "exact small values", values: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, q: 0.5, want: 5},
		{name: "p100 is the max", values: []int64{10, 20, 1_000_000}, q: 1, want: 1_000_000},
		{name: "p99 of 1..100", values: seq(1, 100), q: 0.99, want: 99},
		{name: "negative clamps to zero", values: []int64{-5}, q: 0.5, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
			}
		})
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

// TestHistogramRelativeError checks the promise of the bucket layout: a
// quantile is never below the true value and at most 1/128 above it.
func TestHistogramRelativeError(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var vals []int64
	for i := 0; i < 100_000; i++ {
		v := int64(math.Exp(r.Float64() * 25)) // 1 ns … ~70 s, log-uniform
		vals = append(vals, v)
		h.Record(v)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999, 0.9999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/subBuckets+1 {
			t.Errorf("q%v = %d, exact %d: outside [exact, exact·(1+1/%d)]", q, got, exact, subBuckets)
		}
	}
}

func TestBucketsAreMonotonic(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1 << 20, 1<<20 + 1, 1 << 40, maxValue, maxValue + 10} {
		b := bucketOf(v)
		if b < prev || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d (of %d)", v, b, prev, numBuckets)
		}
		if v <= maxValue && bucketHigh(b) < v {
			t.Fatalf("bucketHigh(%d) = %d < %d", b, bucketHigh(b), v)
		}
		prev = b
	}
}

func TestHistogramMergeAndJSON(t *testing.T) {
	t.Parallel()
	var a, b Histogram
	for v := int64(1); v <= 1000; v++ {
		a.Record(v * 1000)
		b.Record(v * 1_000_000)
	}
	raw, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Quantile(0.5) != b.Quantile(0.5) || back.Count() != b.Count() || back.Max() != b.Max() {
		t.Fatalf("round trip changed the histogram: p50 %d vs %d", back.Quantile(0.5), b.Quantile(0.5))
	}
	a.Merge(&back)
	a.Merge(nil)
	if a.Count() != 2000 {
		t.Fatalf("count = %d, want 2000", a.Count())
	}
	if got := a.Quantile(0.5); got < 1_000_000 || got > 1_010_000 {
		t.Fatalf("merged p50 = %d, want ≈ 1,000,000 (the top of the first half)", got)
	}
	s := a.Summarize()
	if s.Max != 1000 || s.Count != 2000 {
		t.Fatalf("summary = %+v", s)
	}
}
