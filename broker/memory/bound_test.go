package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
)

// publish publishes a message of size bytes to room and returns it as
// stored (offset, epoch).
func publish(t *testing.T, b *Broker, room string, size int) *broker.Message {
	t.Helper()
	m := &broker.Message{Room: room, Event: "e", Data: []byte(`"` + strings.Repeat("x", size) + `"`), MsgID: fmt.Sprintf("%s-%d", room, time.Now().UnixNano())}
	if err := b.Publish(context.Background(), m); err != nil {
		t.Fatalf("Publish(%s): %v", room, err)
	}
	return m
}

// A client that may publish to rooms a history pattern matches makes one
// ring per room, and nothing bounded how many: 2,000 rooms of 1 KB each
// held 2 MB whatever the bound. Now the total stays within it, the rooms
// forgotten are counted, and a position in a forgotten room is
// unrecoverable, never replayed as if nothing was missed, even once the
// room is made again (it is in another epoch).
func TestHistoryBoundedInBytes(t *testing.T) {
	b := New()
	b.SetHistory(func(room string) broker.HistoryPolicy { return broker.HistoryPolicy{Size: 100} })
	const bound = 200 << 10
	evicted := 0
	b.LimitHistory(bound, func() { evicted++ })

	first := publish(t, b, "room-0", 1000)
	for i := 1; i < 2000; i++ {
		publish(t, b, fmt.Sprintf("room-%d", i), 1000)
		if got := b.HistoryBytes(); got > bound {
			t.Fatalf("after room %d: history counts %d B, over the %d B bound", i, got, bound)
		}
	}
	if evicted == 0 {
		t.Fatal("no room was forgotten")
	}
	b.histMu.RLock()
	rooms := len(b.history)
	b.histMu.RUnlock()
	if rooms >= 2000 || rooms < 50 {
		t.Fatalf("%d rooms kept, %d forgotten: want most forgotten, some kept", rooms, evicted)
	}

	// room-0 was the first and the stalest: forgotten. Its member's
	// position is unrecoverable, before and after the room is made again.
	pos := broker.Position{Offset: first.Offset, Epoch: first.Epoch, MsgID: first.MsgID}
	if _, _, err := b.Since(context.Background(), "room-0", pos, 0); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since(forgotten room) = %v, want ErrUnrecoverable", err)
	}
	again := publish(t, b, "room-0", 10)
	if again.Epoch == first.Epoch {
		t.Fatalf("room made again in the epoch %q it had: its offsets would name other messages", again.Epoch)
	}
	// Without a msgId (clients before it) the position is still refused.
	pos.MsgID = ""
	if msgs, _, err := b.Since(context.Background(), "room-0", pos, 0); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since(made again) = %d messages, %v; want ErrUnrecoverable", len(msgs), err)
	}
	// The newest room is kept and recovers.
	last := fmt.Sprintf("room-%d", 1999)
	if _, cur, err := b.Since(context.Background(), last, broker.Position{}, 0); err != nil || cur.Offset != 1 {
		t.Fatalf("Since(%s) = %+v, %v; want its message kept", last, cur, err)
	}
}

// One room alone over the bound keeps its newest messages within it; a
// position before them is unrecoverable.
func TestHistoryOneRoomOverTheBound(t *testing.T) {
	b := New()
	b.SetHistory(func(room string) broker.HistoryPolicy { return broker.HistoryPolicy{Size: 10000} })
	const bound = 100 << 10
	trimmed := 0
	b.LimitHistory(bound, func() { trimmed++ })
	first := publish(t, b, "big", 1000)
	for range 999 {
		publish(t, b, "big", 1000)
	}
	if got := b.HistoryBytes(); got > bound {
		t.Fatalf("history counts %d B, over the %d B bound", got, bound)
	}
	if trimmed == 0 {
		t.Fatal("nothing trimmed")
	}
	if _, _, err := b.Since(context.Background(), "big", broker.Position{Offset: first.Offset, Epoch: first.Epoch}, 0); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since(trimmed) = %v, want ErrUnrecoverable", err)
	}
	msgs, cur, err := b.Since(context.Background(), "big", broker.Position{Offset: 990, Epoch: first.Epoch}, 0)
	if err != nil || len(msgs) != 10 || cur.Offset != 1000 {
		t.Fatalf("Since(990) = %d messages at %d, %v; want the last 10", len(msgs), cur.Offset, err)
	}
}

// What the rings count goes back to their overhead as messages expire or
// are dropped by the ring's size: the count follows what is kept.
func TestHistoryBytesFollowWhatIsKept(t *testing.T) {
	b := New()
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	b.SetHistory(func(room string) broker.HistoryPolicy { return broker.HistoryPolicy{Size: 4, TTL: time.Minute} })
	publish(t, b, "r", 0)
	empty := b.HistoryBytes() - messageCost(&broker.Message{Room: "r", Event: "e", Data: []byte(`""`), MsgID: "x"})
	for range 10 {
		publish(t, b, "r", 100)
	}
	b.histMu.RLock()
	r := b.history["r"]
	b.histMu.RUnlock()
	r.mu.Lock()
	want := ringOverhead + int64(len("r")) + storedSize*int64(cap(r.msgs))
	for i := range r.count {
		want += messageCost(r.msgs[(r.head+i)%len(r.msgs)].m)
	}
	r.mu.Unlock()
	if got := b.HistoryBytes(); got != want {
		t.Fatalf("history counts %d B, its ring %d B", got, want)
	}
	now = now.Add(2 * time.Minute)
	if _, _, err := b.Since(context.Background(), "r", broker.Position{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := b.HistoryBytes(); got > empty+storedSize*4 {
		t.Fatalf("all expired: history counts %d B, want the ring's overhead (%d B)", got, empty)
	}
}
