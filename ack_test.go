package herald_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	if code != 4008 || reason != "slow consumer" {
		t.Fatalf("closed with %d %q, want 4008 \"slow consumer\"", code, reason)
	}
	// The warning is written by the delivering goroutine once the close
	// has started, so it may follow the close frame; wait for it.
	waitFor(t, 2*time.Second, "slow consumer counted and logged", func() bool {
		return metricValue(t, ts, "herald_slow_consumer_disconnects_total") == 1 &&
			logCount(t, ts, "too many unacknowledged messages") > 0
	})
	if warned := logCount(t, ts, "too many unacknowledged messages"); warned != 1 {
		t.Errorf("logged %d times, want once", warned)
	}
}

// TestUnackedMessagesOfAnEndedConnectionAreCounted: messages a client had
// not acknowledged when its connection ended cannot be redelivered; they
// are counted and logged, not dropped silently.
func TestUnackedMessagesOfAnEndedConnectionAreCounted(t *testing.T) {
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
	c.c.CloseNow() // gone without acknowledging
	waitFor(t, 5*time.Second, "dropped acks counted and logged", func() bool {
		return metricValue(t, ts, "herald_acks_dropped_total") == 3 &&
			logCount(t, ts, "connection ended with unacknowledged messages; they are not redelivered") == 1
	})
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
