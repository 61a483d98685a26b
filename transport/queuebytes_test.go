package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// unheldUpgrader is NewUpgrader without its hold on the background
// goroutines (which other tests' connections may still use when this
// test ends).
func unheldUpgrader(opts Options) *Upgrader {
	u := &Upgrader{opts: opts.withDefaults()}
	u.opts.queues = opts.Queues
	if u.opts.queues == nil {
		u.opts.queues = NewQueueBudget(u.opts.MaxQueuedBytes)
	}
	u.opts.reading = opts.Reading
	if u.opts.reading == nil {
		u.opts.reading = NewReadBudget(u.opts.MaxReadingBytes)
	}
	u.opts.takeover = opts.Takeover
	if u.opts.takeover == nil {
		u.opts.takeover = NewReadBudget(u.opts.MaxTakeoverBytes)
	}
	return u
}

// upgraderServer serves u on a test server and hands each connection to
// the test; every connection reads (and drops) what its client sends.
func upgraderServer(t *testing.T, u *Upgrader) (string, <-chan *Conn) {
	t.Helper()
	conns := make(chan *Conn, 16)
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		conns <- c
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return srv.URL, conns
}

// nonReader dials a client that never reads, with a small receive buffer.
func nonReader(t *testing.T, url string, conns <-chan *Conn) *Conn {
	t.Helper()
	rc := dialRaw(t, url, "")
	if tcp, ok := rc.nc.(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	select {
	case c := <-conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

// TestSendQueueBytes: a peer that stops reading is closed as a slow
// consumer once its queue would pass SendQueueBytes, long before
// SendQueueSize messages; what it held, queued and being written, is
// never more than twice the bound plus a message, and is released when it
// ends.
func TestSendQueueBytes(t *testing.T) {
	t.Parallel()
	const bound = 256 << 10
	u := unheldUpgrader(Options{SendQueueBytes: bound, SendQueueSize: 100_000, PingInterval: -1})
	url, conns := upgraderServer(t, u)
	c := nonReader(t, url, conns)
	msg := NewPrepared(Binary, make([]byte, 60_000), 0, 0)
	var err error
	sent, peak := 0, int64(0)
	for ; sent < 10_000; sent++ {
		if err = c.Send(msg); err != nil {
			break
		}
		peak = max(peak, u.QueuedBytes())
		if sent%8 == 0 {
			time.Sleep(time.Millisecond) // let the writer take turns
		}
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Send = %v after %d messages, want ErrSlowConsumer", err, sent)
	}
	t.Logf("closed after %d messages of 60 KB; peak queued %d bytes", sent, peak)
	if limit := int64(2*bound + msg.Size()); peak > limit {
		t.Errorf("queued %d bytes, over twice the bound plus a message (%d)", peak, limit)
	}
	cause := waitDone(t, c, 5*time.Second)
	var ce *CloseError
	if !errors.As(cause, &ce) || ce.Code != CloseSlowConsumer {
		t.Fatalf("Err() = %v, want close 4008", cause)
	}
	if n := u.QueuedBytes(); n != 0 {
		t.Errorf("QueuedBytes = %d after the connection ended, want 0", n)
	}
}

// TestMaxQueuedBytes: once the connections of an Upgrader together queue
// MaxQueuedBytes, a message that does not fit closes its connection with
// 1013 and ErrQueuesFull, whatever its own queue holds.
func TestMaxQueuedBytes(t *testing.T) {
	t.Parallel()
	const perConn, node = 1 << 20, 512 << 10
	u := unheldUpgrader(Options{SendQueueBytes: perConn, MaxQueuedBytes: node, SendQueueSize: 100_000, PingInterval: -1})
	url, conns := upgraderServer(t, u)
	a, b := nonReader(t, url, conns), nonReader(t, url, conns)
	msg := NewPrepared(Binary, make([]byte, 60_000), 0, 0)
	var errA, errB error
	for i := 0; i < 1000 && (errA == nil || errB == nil); i++ {
		if errA == nil {
			errA = a.Send(msg)
		}
		if errB == nil {
			errB = b.Send(msg)
		}
		if i%8 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if !errors.Is(errA, ErrQueuesFull) && !errors.Is(errB, ErrQueuesFull) {
		t.Fatalf("Send errors %v, %v: want ErrQueuesFull for one of them", errA, errB)
	}
	for _, c := range []*Conn{a, b} {
		cause := waitDone(t, c, 5*time.Second)
		var ce *CloseError
		if errors.Is(cause, ErrQueuesFull) && (!errors.As(cause, &ce) || ce.Code != CloseTryAgainLater) {
			t.Errorf("Err() = %v, want close 1013 with ErrQueuesFull", cause)
		}
	}
	if n := u.QueuedBytes(); n != 0 {
		t.Errorf("QueuedBytes = %d after both ended, want 0", n)
	}
}

// TestSharedQueueBudget: Upgraders given one Options.Queues count their
// connections' queues in it, together with what other holders took (an
// Engine.IO server's polling buffers): once the budget is at its limit, a
// connection's message closes it with 1013, whichever holder filled it.
func TestSharedQueueBudget(t *testing.T) {
	t.Parallel()
	budget := NewQueueBudget(256 << 10)
	opts := Options{MaxQueuedBytes: 1 << 30, SendQueueSize: 100_000, PingInterval: -1, Queues: budget}
	u1, u2 := unheldUpgrader(opts), unheldUpgrader(opts)
	url1, conns1 := upgraderServer(t, u1)
	url2, conns2 := upgraderServer(t, u2)
	a, b := nonReader(t, url1, conns1), nonReader(t, url2, conns2)
	msg := NewPrepared(Binary, make([]byte, 1000), 0, 0)
	// Held, a's message stays queued (counted) until a ends: written at
	// once, as it could be (the peer's socket takes 1000 B), it was no
	// longer counted when u2's total was read (3 of 30 runs under -race).
	a.Hold()
	if err := a.Send(msg); err != nil {
		t.Fatal(err)
	}
	if got := u2.QueuedBytes(); got < int64(msg.Size()) {
		t.Fatalf("u2.QueuedBytes = %d with a's message queued on u1, want the shared total", got)
	}
	if !budget.Take(256 << 10) { // another holder fills it
		t.Fatal("Take refused under the limit")
	}
	if budget.Take(1) {
		t.Fatal("Take counted past the limit")
	}
	if err := b.Send(msg); !errors.Is(err, ErrQueuesFull) {
		t.Fatalf("Send on u2's connection with the budget full: %v, want ErrQueuesFull", err)
	}
	cause := waitDone(t, b, 5*time.Second)
	var ce *CloseError
	if !errors.As(cause, &ce) || ce.Code != CloseTryAgainLater {
		t.Fatalf("Err() = %v, want close 1013", cause)
	}
	budget.Give(256 << 10)
	a.Abort(CloseNormal, "", nil)
	waitDone(t, a, 5*time.Second)
	if n := budget.Used(); n != 0 {
		t.Errorf("budget.Used = %d after both ended and the other holder gave back, want 0", n)
	}
}

// TestPreparedInPlace: a message encoded after FrameHeadroom bytes makes
// the same frame as NewPrepared, for every header length, holding the
// payload once.
func TestPreparedInPlace(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		payload := text(n)
		b := append(make([]byte, FrameHeadroom), payload...)
		in := NewPreparedInPlace(Text, b, 0, 0)
		want := NewPrepared(Text, payload, 0, 0)
		if string(in.plainFrame()) != string(want.plainFrame()) || string(in.Payload()) != string(payload) {
			t.Errorf("%d bytes: frame differs from NewPrepared's", n)
		}
		if in.Size() != want.Size() || n > 0 && &in.Payload()[0] != &b[FrameHeadroom] {
			t.Errorf("%d bytes: Size %d (want %d), or the payload was copied", n, in.Size(), want.Size())
		}
	}
}

// TestQueueBudgetClosesBiggestHolder: when the budget is full, the
// message of a client that reads is queued, and the connection whose
// peer does not read (its write waits) and that holds the most is closed
// with 1013 instead: one slow client filling the node's bound must not
// have the others closed. The evicted one's bytes come back.
func TestQueueBudgetClosesBiggestHolder(t *testing.T) {
	t.Parallel()
	const node = 512 << 10
	budget := NewQueueBudget(node)
	u := unheldUpgrader(Options{SendQueueBytes: 4 << 20, SendQueueSize: 100_000, PingInterval: -1, Queues: budget})
	url, conns := upgraderServer(t, u)
	slow := nonReader(t, url, conns)
	rc := dialRaw(t, url, "")
	fast := <-conns
	got := make(chan int, 16)
	go func() {
		for {
			f, err := rc.readFrame()
			if err != nil {
				close(got)
				return
			}
			got <- len(f.payload)
		}
	}()

	if tcp, ok := slow.nc.(interface{ SetWriteBuffer(int) error }); ok {
		_ = tcp.SetWriteBuffer(4096)
	}
	// Until its write waits for the client and it holds half the budget
	// (a burst still queued, not blocked, does not count).
	big := NewPrepared(Binary, make([]byte, 60_000), 0, 0)
	blocked := func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return slow.blocked
	}
	for i := 0; !blocked() || budget.Used() < node/2; i++ {
		if i == 1000 {
			t.Fatalf("after 1000 messages of 60 KB to a client that reads nothing: blocked %t, %d B queued", blocked(), budget.Used())
		}
		if err := slow.Send(big); err != nil {
			t.Fatalf("Send to the slow client %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	held := budget.Used()
	if !budget.Take(node - held) { // another holder fills the rest
		t.Fatal("Take refused under the limit")
	}
	msg := NewPrepared(Binary, make([]byte, 1000), 0, 0)
	if err := fast.Send(msg); err != nil {
		t.Fatalf("Send to the reading client with the budget full: %v, want the slow one closed instead", err)
	}
	select {
	case n := <-got:
		if n != 1000 {
			t.Fatalf("reading client got %d B, want 1000", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading client got nothing")
	}
	cause := waitDone(t, slow, 5*time.Second)
	var ce *CloseError
	if !errors.Is(cause, ErrQueuesFull) || !errors.As(cause, &ce) || ce.Code != CloseTryAgainLater {
		t.Fatalf("slow client's Err() = %v, want ErrQueuesFull with close 1013", cause)
	}
	if budget.Evicted() != 1 {
		t.Errorf("Evicted = %d, want 1", budget.Evicted())
	}
	checkFor(t, 5*time.Second, func() error {
		if n, f := budget.Used(), budget.freeing.Load(); n != node-held || f != 0 {
			return fmt.Errorf("budget counts %d B (freeing %d) after the slow client (%d B) ended, want the other holder's %d", n, f, held, node-held)
		}
		return nil
	})
	budget.Give(node - held)
	if err := fast.Send(msg); err != nil {
		t.Fatalf("reading client after: %v", err)
	}
}
