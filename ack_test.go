package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
)

func TestAckedDeliveryRedeliversUntilAcked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: 150 * time.Millisecond, AckRetries: 2})
	acker := dial(t, ts.URL, withHeader("X-Client-Id", "acker"))
	ignorer := dial(t, ts.URL, withHeader("X-Client-Id", "ignorer"))
	acker.join("orders")
	ignorer.join("orders")

	id, err := ts.Publish(context.Background(), "orders", "created", map[string]int{"id": 7}, herald.WithAck())
	if err != nil {
		t.Fatal(err)
	}
	m := acker.expect("event")
	if m["msgId"] != id || m["ack"] != true {
		t.Fatalf("acked event: %v", m)
	}
	if r := acker.request(map[string]any{"type": "ack", "id": "a1", "msgIds": []string{id}}); r["type"] != "reply" {
		t.Fatalf("ack reply: %v", r)
	} else if d := r["data"].(map[string]any); d["acked"] != float64(1) {
		t.Fatalf("ack reply data: %v", r)
	}
	// The acker gets nothing more; the ignorer gets the original and two
	// redeliveries with the same msgId, then the server gives up.
	if extra, err := acker.tryRead(600 * time.Millisecond); err == nil {
		t.Fatalf("acked message redelivered: %v", extra)
	}
	for i := 0; i < 3; i++ {
		if m := ignorer.expect("event"); m["msgId"] != id {
			t.Fatalf("delivery %d: %v", i, m)
		}
	}
	if extra, err := ignorer.tryRead(500 * time.Millisecond); err == nil {
		t.Fatalf("more than AckRetries redeliveries: %v", extra)
	}
	waitFor(t, 2*time.Second, "expiry counted", func() bool {
		return metricValue(t, ts, "herald_acks_expired_total") == 1 && metricValue(t, ts, "herald_redeliveries_total") == 2
	})
}

// TestTooManyUnackedClosesSlowConsumer: a client that leaves more than
// MaxPendingAcks messages unacknowledged is closed with 4008 "slow
// consumer", as docs/protocol.md says, and counted as one.
func TestTooManyUnackedClosesSlowConsumer(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MaxPendingAcks: 2, AckTimeout: time.Minute})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "laggard"))
	c.join("orders")
	for i := range 6 {
		if _, err := ts.Publish(context.Background(), "orders", "created", map[string]int{"id": i}, herald.WithAck()); err != nil {
			t.Fatal(err)
		}
	}
	code, reason := c.closeStatus(5 * time.Second)
	if code != 4008 || reason != "too many unacknowledged messages" {
		t.Fatalf("closed with %d %q, want 4008 \"too many unacknowledged messages\"", code, reason)
	}
	// The warning is written by the delivering goroutine once the close
	// has started, so it may follow the close frame; wait for it.
	const warning = "closing: too many unacknowledged messages"
	waitFor(t, 10*time.Second, "slow consumer counted and logged", func() bool {
		return metricValue(t, ts, "herald_slow_consumer_disconnects_total") == 1 &&
			metricValue(t, ts, `herald_limit_rejections_total{limit="pending_acks"}`) == 1 &&
			logCount(t, ts, warning) > 0
	})
	if warned := logCount(t, ts, warning); warned != 1 {
		t.Errorf("logged %d times, want once", warned)
	}
}

// ackPayload is JSON data of about n bytes.
func ackPayload(n int) json.RawMessage {
	return json.RawMessage(`"` + strings.Repeat("x", n) + `"`)
}

// TestPendingAckBytesPerConnection: a connection whose unacknowledged
// messages would pass MaxPendingAckBytes is closed with 4008, whatever
// their number, and what it held is released from the node's count.
func TestPendingAckBytesPerConnection(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MaxPendingAckBytes: 50 << 10, AckTimeout: time.Minute})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "hoarder"))
	c.join("orders")
	for range 2 {
		if _, err := ts.Publish(context.Background(), "orders", "big", ackPayload(20<<10), herald.WithAck()); err != nil {
			t.Fatal(err)
		}
		c.expect("event")
	}
	if n := metricValue(t, ts, "herald_pending_ack_bytes"); n < 40<<10 || n > 42<<10 {
		t.Fatalf("herald_pending_ack_bytes = %v with two 20 KiB messages pending", n)
	}
	if _, err := ts.Publish(context.Background(), "orders", "big", ackPayload(20<<10), herald.WithAck()); err != nil {
		t.Fatal(err)
	}
	if code, reason := c.closeStatus(5 * time.Second); code != 4008 || reason != "too many unacknowledged messages" {
		t.Fatalf("closed with %d %q, want 4008 \"too many unacknowledged messages\"", code, reason)
	}
	waitFor(t, 5*time.Second, "bound counted, pending bytes released", func() bool {
		return metricValue(t, ts, `herald_limit_rejections_total{limit="pending_ack_bytes"}`) == 1 &&
			metricValue(t, ts, "herald_pending_ack_bytes") == 0 &&
			metricValue(t, ts, "herald_acks_dropped_total") == 2
	})
}

// TestPendingAckBytesPerNode: a message broadcast with ack to several
// connections is held once and counted once on the node. Once the node's
// pending messages reach MaxNodePendingAckBytes, a connection whose
// message cannot be tracked is closed with 1013 (try again later).
func TestPendingAckBytesPerNode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MaxNodePendingAckBytes: 64 << 10, AckTimeout: time.Minute})
	var members []*wsClient
	for i := range 3 {
		c := dial(t, ts.URL, withHeader("X-Client-Id", fmt.Sprintf("member-%d", i)))
		c.join("orders")
		members = append(members, c)
	}
	publish := func() {
		t.Helper()
		if _, err := ts.Publish(context.Background(), "orders", "big", ackPayload(20<<10), herald.WithAck()); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	for _, c := range members {
		c.expect("event")
	}
	if n := metricValue(t, ts, "herald_pending_ack_bytes"); n < 20<<10 || n > 21<<10 {
		t.Fatalf("herald_pending_ack_bytes = %v for one 20 KiB message pending on 3 connections: want it counted once", n)
	}
	for range 3 { // 80 KiB: the last one passes the bound
		publish()
		for _, c := range members {
			c.expect("event")
		}
	}
	publish() // the node is over its bound: nobody can take it
	for _, c := range members {
		if code, reason := c.closeStatus(5 * time.Second); code != 1013 || !strings.Contains(reason, "unacknowledged") {
			t.Fatalf("closed with %d %q, want 1013 (too many unacknowledged messages on this node)", code, reason)
		}
	}
	waitFor(t, 5*time.Second, "node bound counted, pending bytes released", func() bool {
		return metricValue(t, ts, `herald_limit_rejections_total{limit="node_pending_ack_bytes"}`) == 3 &&
			metricValue(t, ts, "herald_pending_ack_bytes") == 0
	})
}

// TestUnackedMessagesOfAnEndedSessionAreCounted: messages a client had
// not acknowledged when it ended its session (a clean close) cannot be
// redelivered; they are counted and logged, not dropped silently.
func TestUnackedMessagesOfAnEndedSessionAreCounted(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: time.Minute})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "leaver"))
	c.join("orders")
	for i := range 3 {
		if _, err := ts.Publish(context.Background(), "orders", "created", map[string]int{"id": i}, herald.WithAck()); err != nil {
			t.Fatal(err)
		}
		c.expect("event")
	}
	_ = c.c.Close(websocket.StatusNormalClosure, "bye") // gone for good without acknowledging
	waitFor(t, 5*time.Second, "dropped acks counted and logged", func() bool {
		return metricValue(t, ts, "herald_acks_dropped_total") == 3 &&
			logCount(t, ts, "connection ended with unacknowledged messages; they are not redelivered") == 1
	})
}

// TestUnackedMessagesFollowTheSession: what a client had not acknowledged
// when its connection was lost is delivered again to the connection that
// resumes its session, in the order first sent, and tracked there.
func TestUnackedMessagesFollowTheSession(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: time.Minute})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "mover"))
	c.join("orders")
	var ids []string
	for i := range 3 {
		id, err := ts.Publish(context.Background(), "orders", "created", map[string]int{"id": i}, herald.WithAck())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		c.expect("event")
	}
	// The first is acknowledged; two are not when the connection drops.
	if r := c.request(map[string]any{"type": "ack", "id": "a", "msgIds": []string{ids[0]}}); r["type"] != "reply" {
		t.Fatal(r)
	}
	sid, tok := str(c.welcome["sessionId"]), str(c.welcome["resumeToken"])
	_ = c.c.CloseNow()
	waitFor(t, 5*time.Second, "the unacknowledged messages kept with the session", func() bool {
		return metricValue(t, ts, "herald_acks_carried_total") == 2
	})
	r := dial(t, ts.URL, withHeader("X-Client-Id", "mover"), withHeader("X-Herald-Session-Id", sid), withHeader("X-Herald-Resume-Token", tok))
	if r.welcome["resumed"] != true {
		t.Fatalf("welcome %v", r.welcome)
	}
	for _, want := range ids[1:] {
		if m := r.expect("event"); m["msgId"] != want || m["ack"] != true {
			t.Fatalf("redelivered %v, want msgId %s with ack", m, want)
		}
	}
	if r := r.request(map[string]any{"type": "ack", "id": "b", "msgIds": ids[1:]}); r["data"].(map[string]any)["acked"] != float64(2) {
		t.Fatalf("the redelivered messages are not tracked for their ack: %v", r)
	}
	if v := metricValue(t, ts, "herald_acks_dropped_total"); v != 0 {
		t.Fatalf("herald_acks_dropped_total = %v", v)
	}
}

// TestUnackedMessagesReachASessionResumedFirst: when the client resumes
// before its old connection's end is noticed, the old connection's
// unacknowledged messages still reach the new one.
func TestUnackedMessagesReachASessionResumedFirst(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: time.Minute})
	old := dial(t, ts.URL, withHeader("X-Client-Id", "quick"))
	old.join("orders")
	id, err := ts.Publish(context.Background(), "orders", "created", 1, herald.WithAck())
	if err != nil {
		t.Fatal(err)
	}
	old.expect("event")
	sid, tok := str(old.welcome["sessionId"]), str(old.welcome["resumeToken"])
	// The new connection resumes while the old one is still open.
	r := dial(t, ts.URL, withHeader("X-Client-Id", "quick"), withHeader("X-Herald-Session-Id", sid), withHeader("X-Herald-Resume-Token", tok))
	if r.welcome["resumed"] != true {
		t.Fatalf("welcome %v", r.welcome)
	}
	_ = old.c.CloseNow()
	r.expectGaps("orders", "user:quick")
	if m := r.expect("event"); m["msgId"] != id {
		t.Fatalf("got %v, want the old connection's unacknowledged %s", m, id)
	}
}

// TestRedeliveryVisitsOnlyConnectionsAwaitingAcks: the redelivery
// goroutine walks the connections holding unacknowledged messages, not
// every connection, so idle connections cost it nothing. A connection
// leaves that set once its messages are acknowledged or it ends.
func TestRedeliveryVisitsOnlyConnectionsAwaitingAcks(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: 100 * time.Millisecond, AckRetries: 50})
	acker := dial(t, ts.URL, withHeader("X-Client-Id", "acker"))
	leaver := dial(t, ts.URL, withHeader("X-Client-Id", "leaver"))
	for i := range 5 {
		dial(t, ts.URL, withHeader("X-Client-Id", fmt.Sprintf("idle-%d", i)))
	}
	acker.join("orders")
	leaver.join("orders")
	if n := ts.AwaitingAcks(); n != 0 {
		t.Fatalf("%d connections awaiting acks before any acked message", n)
	}
	id, err := ts.Publish(context.Background(), "orders", "created", map[string]int{"id": 1}, herald.WithAck())
	if err != nil {
		t.Fatal(err)
	}
	acker.expect("event")
	leaver.expect("event")
	if n := ts.AwaitingAcks(); n != 2 {
		t.Fatalf("%d connections awaiting acks, want the 2 members of the room", n)
	}
	acker.request(map[string]any{"type": "ack", "id": "a1", "msgIds": []string{id}})
	waitFor(t, 2*time.Second, "the acker to leave the set", func() bool { return ts.AwaitingAcks() == 1 })
	leaver.c.CloseNow()
	waitFor(t, 2*time.Second, "the ended connection to leave the set", func() bool { return ts.AwaitingAcks() == 0 })
}
