package herald

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/memory"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/transport"
)

// benchMember takes the prepared frame as a connection does and keeps it,
// standing in for the non-blocking enqueue.
type benchMember struct{ last *transport.Prepared }

func (m *benchMember) Deliver(d *hub.Delivery) { m.last = d.Frame(v1Codec{}) }

// BenchmarkFanout publishes one 100-byte message to rooms of 1, 100 and
// 10,000 members through the memory broker and the hub. allocs/op must not
// grow with the room: the event is encoded once, whatever the audience.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			br := memory.New()
			h := hub.New(hub.Config{Broker: br, CompressionThreshold: 1024, CompressionLevel: 1})
			_ = br.Start(context.Background(), h)
			ctx := context.Background()
			for i := 0; i < n; i++ {
				if _, err := h.Join(ctx, "room", &benchMember{}); err != nil {
					b.Fatal(err)
				}
			}
			data := []byte(`{"text":"` + string(make([]byte, 0)) + `0123456789012345678901234567890123456789012345678901234567890123456789012345"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := &broker.Message{Room: "room", Event: "message", Data: data, MsgID: "m", PublishedAt: 1}
				if err := h.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkEncodeEvent measures the v1 event encoder alone.
func BenchmarkEncodeEvent(b *testing.B) {
	m := &broker.Message{Room: "chat:lobby", Event: "message", Data: []byte(`{"text":"hello, world","n":42}`), MsgID: "abcde-1", PublishedAt: 1795762800123000000}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _ = v1Codec{}.Encode(m)
	}
}
