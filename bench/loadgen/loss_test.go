package loadgen

import (
	"testing"
	"time"
)

func TestLossAccounting(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	frame := func(step int, seq int64) []byte {
		return KindHerald.AppendPublish(nil, "bench-0", AppendPayload(nil, step, seq, now-int64(time.Millisecond), 100))
	}
	w := &worker{}
	a := &subscriber{room: 0, curStep: -1, lastSeq: -1}
	b := &subscriber{room: 1, curStep: -1, lastSeq: -1, shardIdx: 3}
	// Room 0 got 5 messages in step 2; a missed seq 2 and saw seq 3 twice.
	for _, seq := range []int64{0, 1, 3, 3, 4} {
		w.record(a, frame(2, seq), now)
	}
	// Room 1 got 3 messages in step 2, all received by b, plus a late one
	// from step 1 and frames that are not payloads.
	for _, seq := range []int64{0, 1, 2} {
		w.record(b, frame(2, seq), now)
	}
	w.record(b, frame(1, 9), now)
	w.record(b, []byte(`{"type":"welcome"}`), now)
	w.record(b, frame(MaxSteps, 0), now)

	st := &w.steps[2]
	if got := st.received.Load(); got != 7 {
		t.Fatalf("received = %d, want 7 (4 by a, 3 by b)", got)
	}
	if got := st.dups.Load(); got != 1 {
		t.Fatalf("duplicates = %d, want 1", got)
	}
	if got := w.steps[1].received.Load(); got != 1 {
		t.Fatalf("late step-1 message: received = %d, want 1", got)
	}
	published := []int64{5, 3}
	perRoom := map[int]int{0: 1, 1: 1}
	expected := ExpectedDeliveries(published, perRoom)
	if expected != 8 {
		t.Fatalf("expected = %d, want 8", expected)
	}
	if lost := Lost(expected, st.received.Load()); lost != 1 {
		t.Fatalf("lost = %d, want 1 (a's seq 2)", lost)
	}
	if ExpectedDeliveries([]int64{10, 10}, map[int]int{0: 100}) != 1000 {
		t.Fatal("a room without subscribers expects nothing")
	}
	if Lost(5, 9) != 0 {
		t.Fatal("lost must not go negative")
	}
	var h Histogram
	for i := range st.shards {
		h.Merge(&st.shards[i].h)
	}
	if p50 := h.Quantile(0.5); p50 < int64(time.Millisecond) || p50 > int64(time.Millisecond)*101/100 {
		t.Fatalf("latency p50 = %v, want 1ms", time.Duration(p50))
	}
}
