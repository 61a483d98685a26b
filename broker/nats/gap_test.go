package nats_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/nats"
	"github.com/heraldrt/herald/internal/testserver"
)

// TestGapRepair: two nodes subscribed to a room with history and to one
// without; a publisher on node a sends a numbered stream while the
// nats-server restarts twice (its JetStream storage kept). Every publish
// answered nil reaches node b exactly once, in order, with consecutive
// offsets; the room without history is reported as a gap.
func TestGapRepair(t *testing.T) {
	t.Parallel()
	srv := testserver.StartNATS(t)
	node := func() *brokertest.Node {
		b := newBroker(t, nats.Config{URL: srv.URL()})
		b.SetHistory(func(room string) broker.HistoryPolicy {
			if brokertest.TestHistory(room).Size == 0 {
				return broker.HistoryPolicy{}
			}
			return broker.HistoryPolicy{Size: 10000}
		})
		return brokertest.StartNode(t, b)
	}
	a, b := node(), node()
	room, plain := brokertest.Room("h-gap"), brokertest.Room("plain")
	ctx := context.Background()
	for _, n := range []*brokertest.Node{a, b} {
		for _, r := range []string{room, plain} {
			if err := n.Subscribe(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	var (
		mu       sync.Mutex
		answered []string
		stop     = make(chan struct{})
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := brokertest.Msg(room, "seq")
			m.MsgID = strconv.Itoa(i)
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := a.Publish(pctx, m)
			cancel()
			if err == nil {
				mu.Lock()
				answered = append(answered, m.MsgID)
				mu.Unlock()
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(answered) }
	for round := range 2 {
		at := count()
		brokertest.Eventually(t, 10*time.Second, func() bool { return count() > at+30 }, "round %d: publishes stalled", round)
		srv.Restart()
	}
	at := count()
	brokertest.Eventually(t, 10*time.Second, func() bool { return count() > at+30 }, "publishes stalled at the end")
	close(stop)
	<-done
	want := slices.Clone(answered)
	last := want[len(want)-1]
	brokertest.Eventually(t, 10*time.Second, func() bool { return b.Count(room, last) > 0 }, "last message not delivered")
	seen := make(map[string]int)
	var prev *broker.Message
	for _, m := range b.Messages(room) {
		seen[m.MsgID]++
		if prev != nil && (prev.Epoch != m.Epoch || m.Offset != prev.Offset+1) {
			t.Errorf("offset %d %s follows %d %s", m.Offset, m.Epoch, prev.Offset, prev.Epoch)
		}
		prev = m
	}
	lost, dup := 0, 0
	for _, id := range want {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("%d answered, %d delivered to the other node, %d lost, %d duplicated; gaps reported %v",
		len(want), len(b.Messages(room)), lost, dup, b.Gaps())
	if lost != 0 || dup != 0 {
		t.Fatalf("%d of %d answered publishes lost, %d duplicated", lost, len(want), dup)
	}
	gapped := false
	for _, g := range b.Gaps() {
		gapped = gapped || slices.Contains(g, plain)
		if slices.Contains(g, room) {
			t.Errorf("%s reported as a gap though its history was kept", room)
		}
	}
	if !gapped {
		t.Errorf("room without history %s never reported as a gap: %v", plain, b.Gaps())
	}
}

// TestRepairChecksRestoredStream: a JetStream store restored from an
// older copy (a backup, a machine's snapshot) keeps each stream's epoch
// and gives the sequences after the copy again. A node that had offset
// 10 and repairs after new messages took the stream past 10 again must
// not take the new 11th for the one after its own: the message at 10
// is another one, and the repair reports a gap. Before, it read from
// 11 on, and the new messages 6 to 10 never reached its members.
func TestRepairChecksRestoredStream(t *testing.T) {
	t.Parallel()
	srv := testserver.StartNATS(t)
	b := newBroker(t, nats.Config{URL: srv.URL()})
	b.SetHistory(brokertest.TestHistory)
	n := brokertest.StartNode(t, b)
	room := brokertest.Room("h-restored")
	ctx := context.Background()
	publish := func(count int) *broker.Message {
		t.Helper()
		var m *broker.Message
		for range count {
			m = brokertest.Msg(room, "seq")
			brokertest.Eventually(t, 10*time.Second, func() bool { return n.Publish(ctx, m) == nil }, "publish after a restart")
		}
		return m
	}
	publish(5)
	srv.SaveStore()
	last := publish(5)
	at := broker.Position{Offset: last.Offset, Epoch: last.Epoch}
	if got, cur, err := nats.TrackedSince(b, ctx, room, at, last.MsgID, 0); err != nil || len(got) != 0 || cur.Offset != 10 {
		t.Fatalf("repair's read at the newest message: %d messages at %+v, %v; want none at 10", len(got), cur, err)
	}
	srv.RestartFromSavedStore()
	again := publish(6) // offsets 6 to 11 again
	if again.Offset != 11 || again.Epoch != last.Epoch {
		t.Fatalf("after the restore: offset %d epoch %s, want 11 in %s", again.Offset, again.Epoch, last.Epoch)
	}
	got, cur, err := nats.TrackedSince(b, ctx, room, at, last.MsgID, 0)
	if !errors.Is(err, broker.ErrUnrecoverable) || len(got) != 0 || cur.Offset != 11 {
		t.Fatalf("repair's read after offset 10 was given again: %d messages at %+v, %v; want none at 11, ErrUnrecoverable", len(got), cur, err)
	}
}
