package brokertest

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
)

// countingHandler counts deliveries without keeping them.
type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) HandleMessage(*broker.Message) { h.n.Add(1) }
func (h *countingHandler) HandleControl(*broker.Control) {}
func (h *countingHandler) HandleGap([]string)            {}

// Bench measures Publish of a small message to a room the publishing node
// is subscribed to, from one goroutine ("serial") and from eight
// goroutines per CPU ("parallel", where engines that pipeline commands
// shine), and to a user room, which needs no subscription ("user"). Each
// run ends only when every publication was delivered, so it measures
// throughput, not just enqueueing. newBroker returns a new, unstarted
// broker.
func Bench(b *testing.B, newBroker func(tb testing.TB) broker.Broker) {
	b.Run("serial", func(b *testing.B) { benchPublish(b, newBroker(b), Room("bench"), false) })
	b.Run("parallel", func(b *testing.B) { benchPublish(b, newBroker(b), Room("bench"), true) })
	b.Run("user", func(b *testing.B) { benchPublish(b, newBroker(b), protocol.UserRoomPrefix+Room("bench"), false) })
	// The same room with a history of 1,000 messages (no TTL), on
	// engines that keep one: the cost of storing before delivering.
	withHistory := func(tb testing.TB) broker.Broker {
		br := newBroker(tb)
		h, ok := br.(broker.Historian)
		if !ok {
			_ = br.Close()
			tb.Skip("not a broker.Historian")
		}
		h.SetHistory(func(string) broker.HistoryPolicy { return broker.HistoryPolicy{Size: 1000} })
		return br
	}
	b.Run("serial-history", func(b *testing.B) { benchPublish(b, withHistory(b), Room("bench"), false) })
	b.Run("parallel-history", func(b *testing.B) { benchPublish(b, withHistory(b), Room("bench"), true) })
}

func benchPublish(b *testing.B, br broker.Broker, room string, parallel bool) {
	h := new(countingHandler)
	ctx := context.Background()
	if err := br.Start(ctx, h); err != nil {
		b.Fatalf("Start: %v", err)
	}
	b.Cleanup(func() { _ = br.Close() })
	if err := br.Subscribe(ctx, room); err != nil {
		b.Fatalf("Subscribe: %v", err)
	}
	tmpl := broker.Message{
		Room: room, Event: "chat", MsgID: "0123456789abcdef",
		Data:        json.RawMessage(`{"text":"hello, world","n":12345}`),
		PublishedAt: time.Now().UnixNano(),
	}
	publish := func() {
		m := tmpl
		if err := br.Publish(ctx, &m); err != nil {
			b.Error(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				publish()
			}
		})
	} else {
		for range b.N {
			publish()
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.n.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", h.n.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchSince measures the history reads of a join in a room of 1,000
// messages: a plain join's position ("position"), and a recovery 10
// messages behind from a bare position ("recover") and from one that
// names its message, which is read and compared too ("recover-checked").
// br is a new, unstarted broker that keeps history.
func BenchSince(b *testing.B, br interface {
	broker.Broker
	broker.Historian
}) {
	br.SetHistory(func(string) broker.HistoryPolicy { return broker.HistoryPolicy{Size: 1000} })
	n := StartNode(b, br)
	room := Room("since")
	ctx := context.Background()
	var ms []*broker.Message
	for range 1000 {
		m := Msg(room, "chat")
		if err := n.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	at := ms[len(ms)-11]
	for _, tc := range []struct {
		name string
		pos  broker.Position
		want int
	}{
		{"position", broker.Position{}, 0},
		{"recover", broker.Position{Offset: at.Offset, Epoch: at.Epoch}, 10},
		{"recover-checked", broker.Position{Offset: at.Offset, Epoch: at.Epoch, MsgID: at.MsgID}, 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, _, err := br.Since(ctx, room, tc.pos, 128)
				if err != nil || len(got) != tc.want {
					b.Fatalf("Since = %d messages, %v; want %d", len(got), err, tc.want)
				}
			}
		})
	}
}
