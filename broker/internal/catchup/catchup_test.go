package catchup_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/internal/catchup"
	"github.com/heraldrt/herald/broker/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup returns a memory engine holding count numbered messages of a
// room with history (size 10), a Tracker reading that history, and
// what the Tracker handed on.
func setup(t *testing.T, count int) (*memory.Broker, *catchup.Tracker, *brokertest.Recorder, []*broker.Message, string) {
	t.Helper()
	eng := memory.New()
	eng.SetHistory(func(room string) broker.HistoryPolicy {
		if strings.HasPrefix(room, "h-") {
			return broker.HistoryPolicy{Size: 10}
		}
		return broker.HistoryPolicy{}
	})
	if err := eng.Start(context.Background(), new(brokertest.Recorder)); err != nil {
		t.Fatal(err)
	}
	room := brokertest.Room("h-room")
	rec := new(brokertest.Recorder)
	tr := catchup.New(rec, func(room string) bool { return strings.HasPrefix(room, "h-") }, eng.Since, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(tr.Close)
	tr.Subscribed(context.Background(), room)
	var sent []*broker.Message
	for i := range count {
		m := brokertest.Msg(room, "n")
		m.MsgID = strconv.Itoa(i)
		if err := eng.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		c := *m
		sent = append(sent, &c)
	}
	return eng, tr, rec, sent, room
}

func ids(rec *brokertest.Recorder, room string) []string {
	var out []string
	for _, m := range rec.Messages(room) {
		out = append(out, m.MsgID)
	}
	return out
}

func waitIDs(t *testing.T, rec *brokertest.Recorder, room string, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(ids(rec, room), want) {
		if time.Now().After(deadline) {
			t.Fatalf("handed on %v, want %v", ids(rec, room), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOvertakenMessagesAreReordered(t *testing.T) {
	_, tr, rec, sent, room := setup(t, 4)
	tr.Deliver(sent[0])
	tr.Deliver(sent[2]) // overtook 1
	tr.Deliver(sent[1])
	tr.Deliver(sent[3])
	waitIDs(t, rec, room, []string{"0", "1", "2", "3"})
}

func TestSkipIsFilledFromHistory(t *testing.T) {
	_, tr, rec, sent, room := setup(t, 5)
	tr.Deliver(sent[0])
	tr.Deliver(sent[3]) // 1 and 2 never come live; history has them, and 4
	waitIDs(t, rec, room, []string{"0", "1", "2", "3", "4"})
	tr.Deliver(sent[2]) // late copies: dropped
	tr.Deliver(sent[4])
	if got := ids(rec, room); len(got) != 5 {
		t.Fatalf("handed on %v", got)
	}
}

func TestResubscribeCatchesUp(t *testing.T) {
	eng, tr, rec, sent, room := setup(t, 2)
	tr.Deliver(sent[0])
	tr.Deliver(sent[1])
	tr.Subscribed(context.Background(), "plain")
	for i := 2; i < 5; i++ { // published while this node was cut off
		m := brokertest.Msg(room, "n")
		m.MsgID = strconv.Itoa(i)
		if err := eng.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		c := *m
		sent = append(sent, &c)
	}
	tr.Resubscribed([]string{room, "plain"})
	waitIDs(t, rec, room, []string{"0", "1", "2", "3", "4"})
	tr.Deliver(sent[4]) // live copy of the last one caught up: dropped
	if got := ids(rec, room); len(got) != 5 {
		t.Fatalf("handed on %v", got)
	}
	if gaps := rec.Gaps(); len(gaps) != 1 || !slices.Equal(gaps[0], []string{"plain"}) {
		t.Fatalf("gaps %v, want [[plain]]", gaps)
	}
}

func TestTrimmedGapIsReported(t *testing.T) {
	_, tr, rec, sent, room := setup(t, 30) // history keeps 21..30
	tr.Deliver(sent[0])
	tr.Deliver(sent[29])
	waitIDs(t, rec, room, []string{"0", "29"})
	if gaps := rec.Gaps(); len(gaps) != 1 || gaps[0][0] != room {
		t.Fatalf("gaps %v, want [[%s]]", gaps, room)
	}
}

// TestNewEpochDropsHeldOfTheOld: live messages of the old epoch held
// while a repair finds the history lost (a new epoch: Redis restarted
// empty, or rolled back) belong to the gap it reports; the repair ends
// instead of reading the history again and again for them.
func TestNewEpochDropsHeldOfTheOld(t *testing.T) {
	room := brokertest.Room("h-epoch")
	var (
		calls   atomic.Int32
		started = make(chan struct{})
		release = make(chan struct{})
	)
	since := func(ctx context.Context, _ string, pos broker.Position, _ string, _ int) ([]*broker.Message, broker.Position, error) {
		switch {
		case pos == broker.Position{}:
			return nil, broker.Position{Epoch: "old"}, nil
		case pos.Epoch == "old":
			if calls.Add(1) == 1 {
				close(started)
				<-release
			}
			return nil, broker.Position{Epoch: "new"}, fmt.Errorf("%w: epoch changed", broker.ErrUnrecoverable)
		default:
			calls.Add(1)
			return nil, broker.Position{Epoch: "new"}, nil
		}
	}
	rec := new(brokertest.Recorder)
	tr := catchup.NewChecked(rec, func(string) bool { return true }, since, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(tr.Close)
	tr.Subscribed(context.Background(), room)
	msg := func(id string, offset uint64, epoch string) *broker.Message {
		m := brokertest.Msg(room, "n")
		m.MsgID, m.Offset, m.Epoch = id, offset, epoch
		return m
	}
	tr.Deliver(msg("a", 1, "old"))
	tr.Resubscribed([]string{room})
	<-started
	tr.Deliver(msg("b", 2, "old")) // held by the repair, then lost with its epoch
	close(release)
	tr.Deliver(msg("c", 1, "new"))
	waitIDs(t, rec, room, []string{"a", "c"})
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n > 10 {
		t.Fatalf("%d history reads for one repair", n)
	}
	if gaps := rec.Gaps(); len(gaps) != 1 {
		t.Fatalf("gaps %v, want one", gaps)
	}
}

// TestSoftPositionNamesItsMessage: a room subscribed to before any of
// its messages arrived is caught up from the position the engine gave,
// with the msgId the engine gave for it, so that an engine whose history
// can be rolled back (Redis from an older snapshot) can tell that the
// message at that offset is another one now, as it can for a message
// the node handed on; without it the repair read on from the bare
// offset and skipped the new messages at or below it.
func TestSoftPositionNamesItsMessage(t *testing.T) {
	room := brokertest.Room("h-soft")
	type read struct {
		pos   broker.Position
		posID string
	}
	reads := make(chan read, 8)
	since := func(_ context.Context, _ string, pos broker.Position, posID string, _ int) ([]*broker.Message, broker.Position, error) {
		cur := broker.Position{Offset: 10, Epoch: "e", MsgID: "m10"}
		if pos != (broker.Position{}) {
			reads <- read{pos, posID}
		}
		return nil, cur, nil
	}
	rec := new(brokertest.Recorder)
	tr := catchup.NewChecked(rec, func(string) bool { return true }, since, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(tr.Close)
	tr.Subscribed(context.Background(), room)
	tr.Resubscribed([]string{room})
	select {
	case r := <-reads:
		if r.pos != (broker.Position{Offset: 10, Epoch: "e"}) || r.posID != "m10" {
			t.Fatalf("repair read from %+v with msgId %q, want offset 10 of e with m10", r.pos, r.posID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no repair read")
	}
}
