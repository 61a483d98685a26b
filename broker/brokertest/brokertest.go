package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
)

// deliveryTimeout bounds every wait for a delivery.
const deliveryTimeout = 5 * time.Second

// Option adjusts Run.
type Option func(*options)

type options struct {
	singleNode bool
}

// SingleNode declares an engine without a shared backend (memory): cases
// that need two nodes are skipped.
func SingleNode() Option { return func(o *options) { o.singleNode = true } }

// Run runs the conformance table against the engine that newBroker builds.
// Each call must return a new, not yet started broker; brokers from calls
// within one test share a backend and so act as nodes of one cluster. Run
// starts them, and closes them when the case ends.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tests := []struct {
		name      string
		multiNode bool
		run       func(t *testing.T, node func() *Node)
	}{
		{name: "publish reaches a subscribed handler once", run: testPublishOnce},
		{name: "message fields survive the trip", run: testRoundTrip},
		{name: "no delivery without subscribe", run: testNoInterest},
		{name: "unsubscribe stops delivery", run: testUnsubscribe},
		{name: "resubscribe after unsubscribe", run: testResubscribe},
		{name: "per-publisher order of 1000 messages", run: testOrder},
		{name: "batches keep order and report each message", run: testBatchOrder},
		{name: "health ok", run: testHealth},
		{name: "closed broker refuses work", run: testClosed},
		{name: "control reaches the publishing node", run: testControlSelf},
		{name: "control reaches all of two nodes", multiNode: true, run: testControlAll},
		{name: "two subscribed nodes get each message exactly once", multiNode: true, run: testTwoNodes},
		{name: "publish from another node reaches only subscribed nodes", multiNode: true, run: testCrossNode},
		{name: "user rooms need no subscription", run: testUserRoomSelf},
		{name: "user rooms reach every node once, in order", multiNode: true, run: testUserRoomsEverywhere},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.multiNode && o.singleNode {
				t.Skip("single-node engine")
			}
			tt.run(t, func() *Node { return StartNode(t, newBroker(t)) })
		})
	}
	for _, tt := range historyCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.multiNode && o.singleNode {
				t.Skip("single-node engine")
			}
			first := newBroker(t)
			if _, ok := first.(broker.Historian); !ok {
				_ = first.Close()
				t.Skip("not a broker.Historian")
			}
			tt.run(t, func() *Node {
				b := first
				if b == nil {
					b = newBroker(t)
				}
				first = nil
				b.(broker.Historian).SetHistory(TestHistory)
				return StartNode(t, b)
			})
		})
	}
}

// Node is a started broker and what its Handler received.
type Node struct {
	broker.Broker
	*Recorder
}

// StartNode starts b with a Recorder and closes it when the test ends.
func StartNode(t testing.TB, b broker.Broker) *Node {
	t.Helper()
	n := &Node{Broker: b, Recorder: new(Recorder)}
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	if err := b.Start(ctx, n.Recorder); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

// Room returns a room name no other test uses.
func Room(prefix string) string {
	return prefix + "-" + rand.Text()[:10]
}

// Msg builds a message with a unique MsgID.
func Msg(room, event string) *broker.Message {
	return &broker.Message{
		Room:        room,
		Event:       event,
		MsgID:       rand.Text()[:16],
		Data:        json.RawMessage(`{"n":1}`),
		PublishedAt: time.Now().UnixNano(),
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	t.Cleanup(cancel)
	return c
}

func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// settle publishes a marker to room and waits for it on n: messages the
// same publisher sent to room before are then known to have arrived.
func settle(t testing.TB, pub, n *Node, room string) {
	t.Helper()
	marker := Msg(room, "marker")
	must(t, pub.Publish(ctx(t), marker), "Publish marker")
	Eventually(t, deliveryTimeout, func() bool { return n.Count(room, marker.MsgID) > 0 }, "marker not delivered to %s", room)
}

func testPublishOnce(t *testing.T, node func() *Node) {
	n := node()
	room := Room("once")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	m := Msg(room, "hello")
	must(t, n.Publish(ctx(t), m), "Publish")
	Eventually(t, deliveryTimeout, func() bool { return n.Count(room, m.MsgID) > 0 }, "message not delivered")
	settle(t, n, n, room)
	if got := n.Count(room, m.MsgID); got != 1 {
		t.Fatalf("delivered %d times, want 1", got)
	}
}

func testRoundTrip(t *testing.T, node func() *Node) {
	n := node()
	room := Room("fields")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	m := &broker.Message{
		Room: room, Event: "ev", Data: json.RawMessage(`{"a":[1,2,"x"],"b":null}`),
		MsgID: "id-" + room, Offset: 42, Epoch: "e1", Ack: true,
		PublishedAt: 1700000000123456789, CorrelationID: "cid-1",
	}
	want := *m
	must(t, n.Publish(ctx(t), m), "Publish")
	Eventually(t, deliveryTimeout, func() bool { return n.Count(room, m.MsgID) > 0 }, "message not delivered")
	got := *n.Messages(room)[0]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func testNoInterest(t *testing.T, node func() *Node) {
	n := node()
	quiet, loud := Room("quiet"), Room("loud")
	must(t, n.Subscribe(ctx(t), loud), "Subscribe")
	must(t, n.Publish(ctx(t), Msg(quiet, "nobody")), "Publish")
	settle(t, n, n, loud)
	if got := len(n.Messages(quiet)); got != 0 {
		t.Fatalf("got %d messages for a room without interest", got)
	}
}

func testUnsubscribe(t *testing.T, node func() *Node) {
	n := node()
	room, other := Room("leave"), Room("stay")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	must(t, n.Subscribe(ctx(t), other), "Subscribe")
	settle(t, n, n, room)
	must(t, n.Unsubscribe(ctx(t), room), "Unsubscribe")
	before := len(n.Messages(room))
	must(t, n.Publish(ctx(t), Msg(room, "after")), "Publish")
	settle(t, n, n, other)
	if got := len(n.Messages(room)); got != before {
		t.Fatalf("got %d messages after Unsubscribe", got-before)
	}
}

func testResubscribe(t *testing.T, node func() *Node) {
	n := node()
	room := Room("again")
	for i := range 3 {
		must(t, n.Subscribe(ctx(t), room), "Subscribe")
		settle(t, n, n, room)
		must(t, n.Unsubscribe(ctx(t), room), "Unsubscribe")
		if got := len(n.Messages(room)); got != i+1 {
			t.Fatalf("round %d: %d messages, want %d", i, got, i+1)
		}
	}
}

func testOrder(t *testing.T, node func() *Node) {
	const count = 1000
	n := node()
	room := Room("order")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	for i := range count {
		m := Msg(room, "seq")
		m.MsgID = strconv.Itoa(i)
		must(t, n.Publish(ctx(t), m), "Publish")
	}
	n.InOrder(t, room, count, deliveryTimeout)
}

// testBatchOrder checks a broker.BatchPublisher: 1000 messages in
// batches of 1 to 100, mixed with single publishes, arrive once each in
// publish order; after Close every message of a batch gets ErrClosed.
func testBatchOrder(t *testing.T, node func() *Node) {
	n := node()
	bp, ok := n.Broker.(broker.BatchPublisher)
	if !ok {
		t.Skip("not a broker.BatchPublisher")
	}
	const count = 1000
	room := Room("batch")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	for i, size := 0, 1; i < count; size = size%100 + 7 {
		if size%3 == 0 { // a single publish between batches
			m := Msg(room, "seq")
			m.MsgID = strconv.Itoa(i)
			must(t, n.Publish(ctx(t), m), "Publish")
			i++
			continue
		}
		var ms []*broker.Message
		for ; len(ms) < size && i < count; i++ {
			m := Msg(room, "seq")
			m.MsgID = strconv.Itoa(i)
			ms = append(ms, m)
		}
		errs := make([]error, len(ms))
		bp.PublishBatch(ctx(t), ms, errs)
		for k, err := range errs {
			must(t, err, "PublishBatch of message "+ms[k].MsgID)
		}
	}
	n.InOrder(t, room, count, deliveryTimeout)

	must(t, n.Close(), "Close")
	errs := make([]error, 3)
	bp.PublishBatch(ctx(t), []*broker.Message{Msg(room, "x"), Msg(room, "y"), Msg(room, "z")}, errs)
	for k, err := range errs {
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("PublishBatch after Close: message %d got %v, want ErrClosed", k, err)
		}
	}
}

func testHealth(t *testing.T, node func() *Node) {
	n := node()
	must(t, n.Health(ctx(t)), "Health")
}

func testClosed(t *testing.T, node func() *Node) {
	n := node()
	must(t, n.Close(), "Close")
	if err := n.Publish(ctx(t), Msg(Room("closed"), "x")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := n.Subscribe(ctx(t), Room("closed")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := n.PublishControl(ctx(t), &broker.Control{Kind: broker.ControlRevoke}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("PublishControl after Close = %v, want ErrClosed", err)
	}
	if err := n.Health(ctx(t)); err == nil {
		t.Error("Health after Close = nil")
	}
}

func testControlSelf(t *testing.T, node func() *Node) {
	n := node()
	reason := Room("self")
	must(t, n.PublishControl(ctx(t), &broker.Control{Kind: broker.ControlDisconnectUser, User: "u1", Reason: reason}), "PublishControl")
	Eventually(t, deliveryTimeout, func() bool { return len(n.Controls(reason)) > 0 }, "control not delivered")
	if c := n.Controls(reason)[0]; c.Kind != broker.ControlDisconnectUser || c.User != "u1" {
		t.Fatalf("got %+v", c)
	}
}

func testControlAll(t *testing.T, node func() *Node) {
	a, b := node(), node()
	reason := Room("all")
	c := &broker.Control{Kind: broker.ControlRevoke, TokenID: "jti-1", User: "u2", Until: 1700000000, Reason: reason,
		Payload: json.RawMessage(`{"id":"q1"}`)}
	must(t, a.PublishControl(ctx(t), c), "PublishControl")
	for i, n := range []*Node{a, b} {
		Eventually(t, deliveryTimeout, func() bool { return len(n.Controls(reason)) > 0 }, "control not delivered to node %d", i)
		if got := *n.Controls(reason)[0]; !reflect.DeepEqual(got, *c) {
			t.Fatalf("node %d got %+v, want %+v", i, got, *c)
		}
	}
}

func testTwoNodes(t *testing.T, node func() *Node) {
	const count = 20
	a, b := node(), node()
	room := Room("both")
	must(t, a.Subscribe(ctx(t), room), "Subscribe a")
	must(t, b.Subscribe(ctx(t), room), "Subscribe b")
	ids := make([]string, count)
	for i := range ids {
		m := Msg(room, "ev")
		ids[i] = m.MsgID
		pub := a
		if i%2 == 1 {
			pub = b
		}
		must(t, pub.Publish(ctx(t), m), "Publish")
	}
	for _, n := range []*Node{a, b} {
		settle(t, a, n, room)
		settle(t, b, n, room)
	}
	for i, n := range []*Node{a, b} {
		for _, id := range ids {
			if got := n.Count(room, id); got != 1 {
				t.Errorf("node %d got message %s %d times, want 1", i, id, got)
			}
		}
	}
}

func testCrossNode(t *testing.T, node func() *Node) {
	a, b := node(), node()
	room := Room("cross")
	must(t, b.Subscribe(ctx(t), room), "Subscribe")
	m := Msg(room, "ev")
	must(t, a.Publish(ctx(t), m), "Publish")
	Eventually(t, deliveryTimeout, func() bool { return b.Count(room, m.MsgID) == 1 }, "not delivered to the subscribed node")
	mine := Room("mine")
	must(t, a.Subscribe(ctx(t), mine), "Subscribe")
	settle(t, a, a, mine)
	if got := len(a.Messages(room)); got != 0 {
		t.Fatalf("publishing node without interest got %d messages", got)
	}
}

// testUserRoomSelf checks that a user room reaches the node without a
// Subscribe, and that Subscribe and Unsubscribe of it change nothing (no
// second copy, no loss).
func testUserRoomSelf(t *testing.T, node func() *Node) {
	n := node()
	room := protocol.UserRoomPrefix + Room("self")
	first := Msg(room, "before")
	must(t, n.Publish(ctx(t), first), "Publish")
	Eventually(t, deliveryTimeout, func() bool { return n.Count(room, first.MsgID) == 1 }, "user room not delivered without Subscribe")
	must(t, n.Subscribe(ctx(t), room), "Subscribe")
	settle(t, n, n, room)
	must(t, n.Unsubscribe(ctx(t), room), "Unsubscribe")
	settle(t, n, n, room)
	for _, m := range n.Messages(room) {
		if got := n.Count(room, m.MsgID); got != 1 {
			t.Fatalf("message %s (%s) delivered %d times", m.MsgID, m.Event, got)
		}
	}
	if got := len(n.Messages(room)); got != 3 {
		t.Fatalf("%d messages, want 3 (Subscribe or Unsubscribe of a user room changed delivery)", got)
	}
}

// testUserRoomsEverywhere publishes to many user rooms from one node, none
// subscribed: every node gets every message once, each room in order.
func testUserRoomsEverywhere(t *testing.T, node func() *Node) {
	const users, perUser = 40, 25
	a, b := node(), node()
	rooms := make([]string, users)
	for u := range rooms {
		rooms[u] = protocol.UserRoomPrefix + Room("u"+strconv.Itoa(u))
	}
	for i := range perUser {
		for _, room := range rooms {
			m := Msg(room, "dm")
			m.MsgID = strconv.Itoa(i)
			must(t, a.Publish(ctx(t), m), "Publish")
		}
	}
	for _, room := range rooms {
		marker := Msg(room, "marker")
		must(t, a.Publish(ctx(t), marker), "Publish marker")
		for k, n := range []*Node{a, b} {
			Eventually(t, deliveryTimeout, func() bool { return n.Count(room, marker.MsgID) > 0 },
				"node %d: %s got %d of %d messages and no marker", k, room, len(n.Messages(room)), perUser)
			got := n.Messages(room)
			if len(got) != perUser+1 {
				t.Fatalf("node %d: %s got %d messages, want %d and the marker", k, room, len(got), perUser)
			}
			for i, m := range got[:perUser] {
				if m.MsgID != strconv.Itoa(i) {
					t.Fatalf("node %d: %s position %d holds message %s", k, room, i, m.MsgID)
				}
			}
		}
	}
}
