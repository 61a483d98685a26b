package client_test

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/broker"
	natsbroker "github.com/heraldrt/herald/broker/nats"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testserver"
)

// TestRecoveryAfterRedisRollback: Redis crashes and comes back from an
// RDB snapshot older than the room's last messages (offset 30 of 60), so
// the offsets after the snapshot are given again, in the same epoch, to
// new messages. A Client that had the old ones reconnects, to a node
// with no member of the room (so no node caught up and started a new
// epoch), and recovers from its position: the offset it gives now names
// another message. Every answered publish must reach it, or it must be
// told (recovered false, or a gap). Before the server checked the
// message at the position, the recovery replayed from the position and
// answered recovered true: 30 new messages at or below it lost without
// a word, when the new ones went past it ("past") or reached it ("at"),
// also for a position that came from the join's reply ("join reply").
func TestRecoveryAfterRedisRollback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		again     int  // messages published after the rollback, before the reconnect
		joinAfter bool // the Client joins after the first 60, its position the join reply's
	}{
		{"past", 40, false},
		{"at", 30, false},
		{"join reply", 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := testserver.StartRedis(t)
			e := rollbackEngine{
				broker: func() broker.Broker {
					b, err := redisbroker.New(redisbroker.Config{URL: rs.URL(), Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					return b
				},
				save: func() {
					if _, err := rs.Command("SAVE"); err != nil {
						t.Fatal(err)
					}
				},
				rollBack: rs.RestartFromSnapshot,
			}
			testRecoveryAfterRollback(t, e, tc.again, tc.joinAfter)
		})
	}
}

// TestRecoveryAfterNATSRollback: TestRecoveryAfterRedisRollback on NATS,
// whose JetStream store comes back from a copy of its disk taken at
// offset 30 (a backup restored, a machine's older snapshot): the room's
// stream keeps its epoch (its configuration) and gives the sequences
// after 30 again.
func TestRecoveryAfterNATSRollback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		again     int
		joinAfter bool
	}{
		{"past", 40, false},
		{"at", 30, false},
		{"join reply", 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := testserver.StartNATS(t)
			e := rollbackEngine{
				broker: func() broker.Broker {
					b, err := natsbroker.New(natsbroker.Config{URL: ns.URL(), Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					return b
				},
				save:     ns.SaveStore,
				rollBack: ns.RestartFromSavedStore,
			}
			testRecoveryAfterRollback(t, e, tc.again, tc.joinAfter)
		})
	}
}

// rollbackEngine is a message engine whose history can be rolled back:
// save keeps a copy of it, rollBack brings it back from that copy.
type rollbackEngine struct {
	broker         func() broker.Broker
	save, rollBack func()
}

func testRecoveryAfterRollback(t *testing.T, e rollbackEngine, again int, joinAfter bool) {
	history := []herald.HistoryRule{{Pattern: "h:*", Size: 1000}}
	node := func() *testServer {
		return startServer(t, herald.Config{Broker: e.broker(), History: history})
	}
	pub, mem := node(), node()
	p := startProxy(t, "", mem.addr)
	addr := p.addr()
	var st states
	var rec recoveries
	c := dial(t, "ws://"+addr+"/ws", client.WithStateHandler(st.handler),
		client.WithRecoveryHandler(rec.recovery), client.WithGapHandler(rec.gap))
	evs := collect(c)
	ctx := ctxT(t)
	const room = "h:rollback"
	var answered []int
	publish := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			// Retried while the node's Redis connection comes back.
			waitFor(t, 10*time.Second, "publish "+strconv.Itoa(i)+" answered", func() bool {
				_, err := pub.Server().Publish(ctx, room, "n", i)
				return err == nil
			})
			answered = append(answered, i)
		}
	}
	join := func() {
		t.Helper()
		if err := c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	if !joinAfter {
		join()
	}
	publish(1, 30)
	e.save()
	publish(31, 60)
	if joinAfter {
		join()
		answered = nil // published before the join: not the Client's
	} else {
		waitFor(t, 5*time.Second, "the first 60", func() bool { return evs.count() == 60 })
	}
	if off, _ := c.Position(room); off != 60 {
		t.Fatalf("position %d before the cut, want 60", off)
	}

	p.kill()
	waitFor(t, 5*time.Second, "Reconnecting", func() bool { return st.count(client.Reconnecting) == 1 })
	waitFor(t, 5*time.Second, "the member node without connections", func() bool {
		return mem.metric("herald_connections") == 0
	})
	e.rollBack()          // the room is back at offset 30
	publish(61, 60+again) // offsets from 31 again, in the same epoch
	startProxy(t, addr, mem.addr)
	waitFor(t, 10*time.Second, "reconnected", func() bool { return st.count(client.Connected) == 2 })
	publish(101, 105)

	got := map[int]bool{}
	waitFor(t, 10*time.Second, "the newest message", func() bool {
		evs.mu.Lock()
		defer evs.mu.Unlock()
		for _, ev := range evs.evs {
			n, _ := strconv.Atoi(string(ev.Data))
			got[n] = true
		}
		return got[105]
	})
	told := len(rec.gaps) > 0
	for _, ok := range rec.of(room) {
		told = told || !ok
	}
	var lost []int
	for _, n := range answered {
		if !got[n] {
			lost = append(lost, n)
		}
	}
	t.Logf("%d of %d answered publishes delivered, %d lost; recoveries %v, gaps %v", len(answered)-len(lost), len(answered), len(lost), rec.of(room), rec.gaps)
	if len(lost) > 0 && !told {
		t.Fatalf("%d answered publishes lost without a word: %v", len(lost), lost)
	}
}
