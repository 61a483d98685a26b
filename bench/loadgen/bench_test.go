package loadgen

import (
	"testing"
	"time"
)

// The generator's own cost per delivery: parse the payload out of a
// server frame and record its latency.
func BenchmarkRecordDelivery(b *testing.B) {
	frame := KindHerald.AppendPublish(nil, "bench-1", AppendPayload(nil, 3, 123456, time.Now().UnixNano(), 100))
	w := &worker{}
	s := &subscriber{curStep: -1, lastSeq: -1}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.lastSeq = -1
		w.record(s, frame, time.Now().UnixNano())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i) * 997)
	}
}
