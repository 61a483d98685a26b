package nats_test

import (
	"context"
	"testing"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/nats"
	"github.com/heraldrt/herald/internal/testserver"
)

// BenchmarkSince: the history reads of a join in a room of 1,000
// messages: a plain join's position ("position"), and a recovery 10
// messages behind from a bare position ("recover") and from one that
// names its message, which is read and compared too ("recover-checked").
func BenchmarkSince(b *testing.B) {
	srv := testserver.StartNATS(b)
	br := newBroker(b, nats.Config{URL: srv.URL()})
	br.SetHistory(func(string) broker.HistoryPolicy { return broker.HistoryPolicy{Size: 1000} })
	n := brokertest.StartNode(b, br)
	room := brokertest.Room("since")
	ctx := context.Background()
	var ms []*broker.Message
	for range 1000 {
		m := brokertest.Msg(room, "chat")
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
