package loadgen

import (
	"encoding/json"
	"math"
	"math/bits"
	"time"
)

// Histogram buckets: values below 2·subBuckets are exact; above, every
// power of two is split into subBuckets linear buckets, so a recorded value
// is known to within 1/subBuckets (under 0.8 %), as in HdrHistogram.
const (
	subBits    = 7
	subBuckets = 1 << subBits
	maxShift   = 40 - subBits // values are clamped to 2^41-1 ns (about 36 min)
	numBuckets = (maxShift + 2) * subBuckets
	maxValue   = 1<<41 - 1
)

// Histogram counts int64 values (nanoseconds here) in log-linear buckets.
// The zero value is ready to use. It is not safe for concurrent use.
type Histogram struct {
	counts []uint64
	total  uint64
	sum    float64
	min    int64
	max    int64
}

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v > maxValue {
		v = maxValue
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	if shift <= 0 {
		return int(v)
	}
	return shift*subBuckets + int(v>>uint(shift))
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < 2*subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	m := int64(i - shift*subBuckets)
	return (m+1)<<uint(shift) - 1
}

// Record adds one value.
func (h *Histogram) Record(v int64) {
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest recorded value (0 if none).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the average of the recorded values (0 if none).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Quantile returns the value at quantile q (0 < q ≤ 1): the upper bound of
// the bucket holding the ⌈q·n⌉-th smallest value, capped at the largest
// value recorded. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}

// Summary is the percentiles of a latency histogram, in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summarize returns h's percentiles, reading its values as nanoseconds.
func (h *Histogram) Summarize() Summary {
	ms := func(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }
	return Summary{
		Count: h.total,
		P50:   ms(h.Quantile(0.50)),
		P95:   ms(h.Quantile(0.95)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.max),
		Mean:  h.Mean() / float64(time.Millisecond),
	}
}

// histJSON is the sparse wire form of a Histogram: [bucket, count] pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	Total   uint64      `json:"total"`
	Sum     float64     `json:"sum"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
}

// MarshalJSON encodes only the non-empty buckets.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histJSON{Total: h.total, Sum: h.sum, Min: h.min, Max: h.max, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var in histJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*h = Histogram{total: in.Total, sum: in.Sum, min: in.Min, max: in.Max}
	if len(in.Buckets) > 0 {
		h.counts = make([]uint64, numBuckets)
		for _, p := range in.Buckets {
			if p[0] < numBuckets {
				h.counts[p[0]] += p[1]
			}
		}
	}
	return nil
}
