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

func TestVerifyPerClient(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	frame := func(step int, seq int64) []byte {
		return KindHerald.AppendPublish(nil, "bench", AppendPayload(nil, step, seq, now, 100))
	}
	w := &worker{}
	newSub := func(room int) *subscriber { return &subscriber{room: room, curStep: -1, lastSeq: -1} }
	full, short, gone, late, empty := newSub(0), newSub(0), newSub(1), newSub(1), newSub(2)
	for seq := range int64(4) {
		w.record(full, frame(0, seq), now) // step 0 is told apart from "nothing yet"
		w.record(full, frame(0, seq), now) // a duplicate counts once
	}
	for _, seq := range []int64{0, 2, 3} {
		w.record(short, frame(0, seq), now)
	}
	w.record(gone, frame(0, 0), now)
	gone.gone.Store(true)
	// late got room 1's two messages of step 0, then one of step 1: step
	// 0 is no longer what it counts.
	w.record(late, frame(0, 0), now)
	w.record(late, frame(0, 1), now)
	w.record(late, frame(1, 0), now)
	subs := []*subscriber{full, short, gone, late, empty}

	got := verify(subs, 0, []int64{4, 2})
	want := VerifyReport{Clients: 5, Short: 3, Missing: 1 + 1 + 2, Gone: 1}
	if *got != want {
		t.Fatalf("step 0: %+v, want %+v", *got, want)
	}
	if got := verify(subs, 1, []int64{0, 1, 0}); got.Short != 1 || got.Missing != 1 || got.Gone != 1 || got.Extra != 0 {
		t.Fatalf("step 1: %+v, want only gone short of room 1's one message", *got)
	}
	if got := verify(subs, 0, []int64{3, 2}); got.Extra != 1 || got.Short != 2 {
		t.Fatalf("fewer published than received: %+v, want 1 extra and 2 short", *got)
	}
}
