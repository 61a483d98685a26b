package socketio

import (
	"context"
	"testing"
	"time"
)

// The connect timeout of many connections accepted one after another
// closes those that joined no namespace, each about ConnectTimeout after
// it was accepted, and none that joined or that closed first; the queue
// is empty afterwards.
func TestConnectDeadlines(t *testing.T) {
	t.Parallel()
	const timeout = 150 * time.Millisecond
	srv, err := New(Config{ConnectTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	type conn struct {
		c        *Client
		m        *memConn
		accepted time.Time
	}
	var conns []conn
	for i := range 9 {
		m := newMemConn()
		accepted := time.Now() // before Accept queues the deadline
		conns = append(conns, conn{srv.Accept(context.Background(), m), m, accepted})
		switch i % 3 {
		case 1:
			conns[i].c.HandleText([]byte("0"))
		case 2:
			conns[i].c.HandleClose("transport close")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, cn := range conns {
		if i%3 != 0 {
			continue
		}
		if r := cn.m.waitClosed(t); r != ReasonConnectTimeout {
			t.Fatalf("connection %d closed with %q", i, r)
		}
		if d := time.Since(cn.accepted); d < timeout {
			t.Fatalf("connection %d closed %v after it was accepted, before the %v timeout", i, d, timeout)
		}
	}
	time.Sleep(timeout)
	for i, cn := range conns {
		cn.m.mu.Lock()
		closed := cn.m.closed
		cn.m.mu.Unlock()
		if i%3 != 0 && closed {
			t.Errorf("connection %d (joined or closed first) was closed by the connect timeout", i)
		}
	}
	srv.deadlines.mu.Lock()
	defer srv.deadlines.mu.Unlock()
	if n := len(srv.deadlines.q) - srv.deadlines.head; n != 0 || srv.deadlines.armed {
		t.Errorf("after every deadline: %d queued, timer armed %t", n, srv.deadlines.armed)
	}
}

// Connections that all joined (or closed) leave no queue behind: it is
// dropped as the last waiting one is done, long before its deadlines.
func TestConnectDeadlinesDroppedWhenNoneWaits(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{ConnectTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	queued := func() (int, int) {
		srv.deadlines.mu.Lock()
		defer srv.deadlines.mu.Unlock()
		return len(srv.deadlines.q) - srv.deadlines.head, srv.deadlines.waiting
	}
	var clients []*Client
	for range 100 {
		clients = append(clients, srv.Accept(context.Background(), newMemConn()))
	}
	if n, w := queued(); n != 100 || w != 100 {
		t.Fatalf("after 100 accepts: %d queued, %d waiting", n, w)
	}
	for i, c := range clients {
		if i%2 == 0 {
			c.HandleText([]byte("0"))
		} else {
			c.HandleClose("transport close")
		}
		c.HandleClose("transport close") // a second end counts nothing
	}
	if n, w := queued(); n != 0 || w != 0 {
		t.Fatalf("after every client joined or closed: %d queued, %d waiting", n, w)
	}
}
