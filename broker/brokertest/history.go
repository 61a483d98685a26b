package brokertest

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
)

// HistorySize is what the conformance table's history rooms keep: small,
// yet room enough for a node to fill a gap while others publish on.
const HistorySize = 64

// historyTTL is the TTL of the table's expiring rooms.
const historyTTL = 300 * time.Millisecond

// TestHistory is the policy the history cases give their nodes: rooms
// starting with "h-" keep HistorySize messages, rooms starting with
// "ttl-" keep HistorySize for historyTTL, others none.
func TestHistory(room string) broker.HistoryPolicy {
	switch {
	case strings.HasPrefix(room, "h-"):
		return broker.HistoryPolicy{Size: HistorySize}
	case strings.HasPrefix(room, "ttl-"):
		return broker.HistoryPolicy{Size: HistorySize, TTL: historyTTL}
	}
	return broker.HistoryPolicy{}
}

// historyCases are the cases for engines that implement broker.Historian.
var historyCases = []struct {
	name      string
	multiNode bool
	run       func(t *testing.T, node func() *Node)
}{
	{name: "history: offsets start at 1, increase, and reach the handler", run: testOffsets},
	{name: "history: since returns what followed, oldest first, limited", run: testSince},
	{name: "history: a trimmed gap is unrecoverable", run: testTrimmed},
	{name: "history: another epoch is unrecoverable", run: testOtherEpoch},
	{name: "history: a position's msgId is checked", run: testCheckedPosition},
	{name: "history: expired messages are unrecoverable", run: testExpired},
	{name: "history: an idempotency key stores and delivers once", run: testIdempotent},
	{name: "history: rooms without history keep none", run: testNoHistory},
	{name: "history: two nodes share offsets and epoch", multiNode: true, run: testHistoryTwoNodes},
	{name: "history: batches store in order, once per idempotency key", run: testHistoryBatch},
}

// isAt reports whether cur, a current position Since returned, is offset
// in epoch, its MsgID newest's or "" (engines that do not keep it).
func isAt(cur broker.Position, offset uint64, epoch, newest string) bool {
	return cur.Offset == offset && cur.Epoch == epoch && (cur.MsgID == "" || cur.MsgID == newest)
}

func historian(t *testing.T, n *Node) broker.Historian {
	t.Helper()
	h, ok := n.Broker.(broker.Historian)
	if !ok {
		t.Fatal("not a broker.Historian")
	}
	return h
}

// publishN publishes count numbered messages ("0", "1", …) to room.
func publishN(t *testing.T, n *Node, room string, count int) []*broker.Message {
	t.Helper()
	out := make([]*broker.Message, count)
	for i := range out {
		m := Msg(room, "seq")
		m.MsgID = strconv.Itoa(i)
		must(t, n.Publish(ctx(t), m), "Publish")
		out[i] = m
	}
	return out
}

func testOffsets(t *testing.T, node func() *Node) {
	n := node()
	room := Room("h-offsets")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	sent := publishN(t, n, room, 5)
	epoch := sent[0].Epoch
	if epoch == "" {
		t.Fatal("Publish left Epoch empty")
	}
	for i, m := range sent {
		if m.Offset != uint64(i+1) || m.Epoch != epoch {
			t.Fatalf("publish %d got offset %d epoch %q, want %d %q", i, m.Offset, m.Epoch, i+1, epoch)
		}
	}
	n.InOrder(t, room, 5, deliveryTimeout)
	for i, m := range n.Messages(room) {
		if m.Offset != uint64(i+1) || m.Epoch != epoch {
			t.Fatalf("delivery %d has offset %d epoch %q, want %d %q", i, m.Offset, m.Epoch, i+1, epoch)
		}
	}
}

func testSince(t *testing.T, node func() *Node) {
	n := node()
	h := historian(t, n)
	room := Room("h-since")
	_, cur, err := h.Since(ctx(t), room, broker.Position{}, 0)
	must(t, err, "Since of an empty room")
	if cur.Offset != 0 {
		t.Fatalf("empty room is at offset %d", cur.Offset)
	}
	sent := publishN(t, n, room, 5)
	epoch := sent[0].Epoch
	got, cur, err := h.Since(ctx(t), room, broker.Position{}, 0)
	must(t, err, "Since(zero)")
	if len(got) != 0 || !isAt(cur, 5, epoch, "4") {
		t.Fatalf("Since(zero) = %d messages at %+v, want none at 5 %q", len(got), cur, epoch)
	}
	got, cur, err = h.Since(ctx(t), room, broker.Position{Offset: 2, Epoch: epoch}, 0)
	must(t, err, "Since(2)")
	if cur.Offset != 5 || len(got) != 3 {
		t.Fatalf("Since(2) = %d messages at %+v, want 3 at 5", len(got), cur)
	}
	for i, m := range got {
		if m.Offset != uint64(3+i) || m.MsgID != strconv.Itoa(2+i) || m.Epoch != epoch || m.Room != room || string(m.Data) != `{"n":1}` {
			t.Fatalf("Since(2)[%d] = %+v", i, m)
		}
	}
	got, _, err = h.Since(ctx(t), room, broker.Position{Offset: 1, Epoch: epoch}, 2)
	must(t, err, "Since(1, limit 2)")
	if len(got) != 2 || got[0].Offset != 2 || got[1].Offset != 3 {
		t.Fatalf("Since(1, limit 2) = %d messages", len(got))
	}
	got, _, err = h.Since(ctx(t), room, broker.Position{Offset: 5, Epoch: epoch}, 0)
	must(t, err, "Since(newest)")
	if len(got) != 0 {
		t.Fatalf("Since(newest) = %d messages", len(got))
	}
	got, _, err = h.Since(ctx(t), room, broker.Position{Offset: 0, Epoch: epoch}, 0)
	must(t, err, "Since(start of epoch)")
	if len(got) != 5 {
		t.Fatalf("Since(start of epoch) = %d messages, want 5", len(got))
	}
}

func testTrimmed(t *testing.T, node func() *Node) {
	// Engines may trim approximately (Redis MAXLEN ~ keeps whole
	// stream nodes of up to 100 entries): publish well past that.
	const count = 300
	n := node()
	h := historian(t, n)
	room := Room("h-trim")
	sent := publishN(t, n, room, count)
	epoch := sent[0].Epoch
	_, cur, err := h.Since(ctx(t), room, broker.Position{Offset: 2, Epoch: epoch}, 0)
	if !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since(2) after %d publishes to a room of %d: %v, want ErrUnrecoverable", count, HistorySize, err)
	}
	if !isAt(cur, count, epoch, strconv.Itoa(count-1)) {
		t.Fatalf("Since(2) current position %+v, want %d %q", cur, count, epoch)
	}
	got, _, err := h.Since(ctx(t), room, broker.Position{Offset: count - HistorySize, Epoch: epoch}, 0)
	must(t, err, "Since within the window")
	if len(got) != HistorySize || got[0].Offset != count-HistorySize+1 {
		t.Fatalf("Since within the window = %d messages", len(got))
	}
}

func testOtherEpoch(t *testing.T, node func() *Node) {
	n := node()
	h := historian(t, n)
	room := Room("h-epoch")
	sent := publishN(t, n, room, 3)
	_, cur, err := h.Since(ctx(t), room, broker.Position{Offset: 1, Epoch: "not-" + sent[0].Epoch}, 0)
	if !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since of another epoch: %v, want ErrUnrecoverable", err)
	}
	if !isAt(cur, 3, sent[0].Epoch, "2") {
		t.Fatalf("current position %+v", cur)
	}
}

// testCheckedPosition: a position that names its message (MsgID) is read
// only when the history has that message at its offset; another one
// there (a history rolled back, whose offsets were given again) is
// unrecoverable, at the newest offset too.
func testCheckedPosition(t *testing.T, node func() *Node) {
	n := node()
	h := historian(t, n)
	room := Room("h-checked")
	sent := publishN(t, n, room, 5) // msgIds "0" to "4" at offsets 1 to 5
	epoch := sent[0].Epoch
	got, cur, err := h.Since(ctx(t), room, broker.Position{Offset: 2, Epoch: epoch, MsgID: "1"}, 0)
	must(t, err, "Since(2, its msgId)")
	if len(got) != 3 || got[0].Offset != 3 || got[0].MsgID != "2" || got[2].Offset != 5 || !isAt(cur, 5, epoch, "4") {
		t.Fatalf("Since(2, its msgId) = %d messages, at %+v; want 3 to 5, at 5", len(got), cur)
	}
	got, _, err = h.Since(ctx(t), room, broker.Position{Offset: 1, Epoch: epoch, MsgID: "0"}, 2)
	must(t, err, "Since(1, its msgId, limit 2)")
	if len(got) != 2 || got[0].Offset != 2 || got[1].Offset != 3 {
		t.Fatalf("Since(1, its msgId, limit 2) = %d messages", len(got))
	}
	got, _, err = h.Since(ctx(t), room, broker.Position{Offset: 5, Epoch: epoch, MsgID: "4"}, 0)
	must(t, err, "Since(newest, its msgId)")
	if len(got) != 0 {
		t.Fatalf("Since(newest, its msgId) = %d messages", len(got))
	}
	for _, at := range []uint64{2, 5} {
		got, cur, err := h.Since(ctx(t), room, broker.Position{Offset: at, Epoch: epoch, MsgID: "other"}, 0)
		if len(got) != 0 || !errors.Is(err, broker.ErrUnrecoverable) || !isAt(cur, 5, epoch, "4") {
			t.Fatalf("Since(%d, another msgId) = %d messages at %+v, %v; want none at 5, ErrUnrecoverable", at, len(got), cur, err)
		}
	}
}

func testExpired(t *testing.T, node func() *Node) {
	n := node()
	h := historian(t, n)
	room := Room("ttl-expire")
	sent := publishN(t, n, room, 3)
	pos := broker.Position{Offset: 1, Epoch: sent[0].Epoch}
	got, _, err := h.Since(ctx(t), room, pos, 0)
	must(t, err, "Since before the TTL")
	if len(got) != 2 {
		t.Fatalf("Since before the TTL = %d messages, want 2", len(got))
	}
	Eventually(t, deliveryTimeout, func() bool {
		_, _, err := h.Since(ctx(t), room, pos, 0)
		return errors.Is(err, broker.ErrUnrecoverable)
	}, "messages older than the TTL still returned")
}

func testIdempotent(t *testing.T, node func() *Node) {
	n := node()
	h := historian(t, n)
	room := Room("h-idk")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	first := Msg(room, "once")
	first.IdempotencyKey = "key-1"
	must(t, n.Publish(ctx(t), first), "Publish")
	retry := Msg(room, "once")
	retry.IdempotencyKey = "key-1"
	must(t, n.Publish(ctx(t), retry), "Publish again")
	if retry.MsgID != first.MsgID || retry.Offset != first.Offset || retry.Epoch != first.Epoch {
		t.Fatalf("retry got %s %d %q, want the stored %s %d %q", retry.MsgID, retry.Offset, retry.Epoch, first.MsgID, first.Offset, first.Epoch)
	}
	other := Msg(room, "other")
	other.IdempotencyKey = "key-2"
	must(t, n.Publish(ctx(t), other), "Publish another key")
	if other.Offset != first.Offset+1 {
		t.Fatalf("another key got offset %d, want %d", other.Offset, first.Offset+1)
	}
	settle(t, n, n, room)
	if got := n.Count(room, first.MsgID); got != 1 {
		t.Fatalf("message delivered %d times, want 1", got)
	}
	got, _, err := h.Since(ctx(t), room, broker.Position{Epoch: first.Epoch}, 0)
	must(t, err, "Since")
	if len(got) != 3 || got[0].IdempotencyKey != "key-1" {
		t.Fatalf("history holds %d messages, want 3 (first, other, marker)", len(got))
	}
}

func testNoHistory(t *testing.T, node func() *Node) {
	n := node()
	h := historian(t, n)
	room := Room("plain")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	m := Msg(room, "x")
	must(t, n.Publish(ctx(t), m), "Publish")
	if m.Offset != 0 || m.Epoch != "" {
		t.Fatalf("a room without history got offset %d epoch %q", m.Offset, m.Epoch)
	}
	got, _, err := h.Since(ctx(t), room, broker.Position{Offset: 0, Epoch: "x"}, 0)
	if len(got) != 0 || !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since of a room without history = %d messages, %v; want none, ErrUnrecoverable", len(got), err)
	}
}

func testHistoryTwoNodes(t *testing.T, node func() *Node) {
	const count = 40
	a, b := node(), node()
	room := Room("h-two")
	must(t, a.Subscribe(ctx(t), room), "Subscribe a")
	must(t, b.Subscribe(ctx(t), room), "Subscribe b")
	for i := range count {
		pub := a
		if i%2 == 1 {
			pub = b
		}
		m := Msg(room, "seq")
		m.MsgID = strconv.Itoa(i)
		must(t, pub.Publish(ctx(t), m), "Publish")
		if m.Offset != uint64(i+1) {
			t.Fatalf("publish %d got offset %d", i, m.Offset)
		}
	}
	for k, n := range []*Node{a, b} {
		n.InOrder(t, room, count, deliveryTimeout)
		for i, m := range n.Messages(room) {
			if m.Offset != uint64(i+1) {
				t.Fatalf("node %d delivery %d has offset %d", k, i, m.Offset)
			}
		}
	}
}

// testHistoryBatch checks a broker.BatchPublisher on a room with
// history: offsets follow the batch order, and a key repeated within a
// batch is stored once.
func testHistoryBatch(t *testing.T, node func() *Node) {
	n := node()
	bp, ok := n.Broker.(broker.BatchPublisher)
	if !ok {
		t.Skip("not a broker.BatchPublisher")
	}
	room := Room("h-batch")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	var ms []*broker.Message
	for i := range 6 {
		m := Msg(room, "seq")
		m.MsgID = strconv.Itoa(i)
		ms = append(ms, m)
	}
	ms[4].IdempotencyKey, ms[5].IdempotencyKey = "k", "k"
	errs := make([]error, len(ms))
	bp.PublishBatch(ctx(t), ms, errs)
	for i, err := range errs {
		must(t, err, "PublishBatch of message "+strconv.Itoa(i))
	}
	for i, m := range ms[:5] {
		if m.Offset != uint64(i+1) {
			t.Fatalf("message %d got offset %d", i, m.Offset)
		}
	}
	if ms[5].Offset != 5 || ms[5].MsgID != "4" {
		t.Fatalf("repeated key got offset %d msgId %s, want 5 and 4", ms[5].Offset, ms[5].MsgID)
	}
	n.InOrder(t, room, 5, deliveryTimeout)
	settle(t, n, n, room)
	if got := len(n.Messages(room)); got != 6 {
		t.Fatalf("%d deliveries, want 5 and the marker", got)
	}
}
