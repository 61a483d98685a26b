package transport

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

func TestCompressionOnTheWire(t *testing.T) {
	t.Parallel()
	payload := text(20000)
	send := make(chan []*Prepared, 1)
	ts := newTestServer(t, Options{Compression: true}, func(c *Conn) {
		for _, p := range <-send {
			if err := c.Send(p); err != nil {
				return
			}
		}
		_, _, _ = c.Read(context.Background())
	})
	rc := dialRaw(t, ts.URL, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
	if got := rc.resp.Header.Get("Sec-WebSocket-Extensions"); got != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Fatalf("extensions response %q", got)
	}
	small := text(100)
	tests := []struct {
		name     string
		p        *Prepared
		wantRSV1 bool
	}{
		{name: "below default threshold", p: NewPrepared(Text, small, 0, 0)},
		{name: "at threshold", p: NewPrepared(Text, small, 100, 0), wantRSV1: true},
		{name: "negative threshold", p: NewPrepared(Binary, small, -1, 0), wantRSV1: true},
		{name: "large level 1", p: NewPrepared(Text, payload, 0, 1), wantRSV1: true},
		{name: "large level 9", p: NewPrepared(Text, payload, 0, 9), wantRSV1: true},
		{name: "incompressible", p: NewPrepared(Binary, noise(4096), 0, 0)},
	}
	var ps []*Prepared
	for _, tt := range tests {
		ps = append(ps, tt.p)
	}
	send <- ps
	sizes := map[string]int{}
	for _, tt := range tests {
		f := rc.mustRead()
		if f.rsv1 != tt.wantRSV1 {
			t.Errorf("%s: RSV1 = %v, want %v", tt.name, f.rsv1, tt.wantRSV1)
		}
		got := f.payload
		if f.rsv1 {
			got = inflateBytes(t, f.payload)
		}
		if !bytes.Equal(got, tt.p.Payload()) {
			t.Errorf("%s: payload mismatch", tt.name)
		}
		sizes[tt.name] = f.wireLen
	}
	l1, l9 := sizes["large level 1"], sizes["large level 9"]
	t.Logf("20000-byte text: level 1 %d bytes, level 9 %d bytes", l1, l9)
	if l9 >= l1 || l1 >= len(payload) {
		t.Errorf("level 9 (%d) should beat level 1 (%d), which should beat raw (%d)", l9, l1, len(payload))
	}
}

func TestPreparedSharedBytes(t *testing.T) {
	t.Parallel()
	p := NewPrepared(Text, text(5000), 0, 0)
	plain := &Conn{}
	deflate := &Conn{neg: negotiated{deflate: deflateOn}}
	a, b := plain.frameFor(p), plain.frameFor(p)
	if &a[0] != &b[0] {
		t.Error("plain frame rebuilt")
	}
	c, d := deflate.frameFor(p), deflate.frameFor(p)
	if &c[0] != &d[0] || c[0]&rsv1Bit == 0 {
		t.Error("compressed frame rebuilt or not compressed")
	}
	if got := serverHeaderLen(70000); got != 10 {
		t.Errorf("header length for 70000 = %d", got)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	key := [4]byte{1, 2, 3, 4}
	for n := range 40 {
		for split := 0; split <= n; split++ {
			b := text(n)
			want := make([]byte, n)
			for i := range b {
				want[i] = b[i] ^ key[i%4]
			}
			pos := maskBytes(key, 0, b[:split])
			maskBytes(key, pos, b[split:])
			if !bytes.Equal(b, want) {
				t.Fatalf("n=%d split=%d mismatch", n, split)
			}
		}
	}
}

// noise returns n pseudo-random bytes that deflate cannot shrink.
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// BenchmarkPreparedSend prepares one broadcast and enqueues it to many
// connections, taking each frame as the writer would. Allocations per op
// must stay at the Prepared and its frame(s), whatever the fan-out.
func BenchmarkPreparedSend(b *testing.B) {
	for _, bc := range []struct {
		name    string
		deflate deflateFlags
		size    int
	}{
		{name: "plain/100B", size: 100},
		{name: "plain/4KiB", size: 4096},
		{name: "deflate/4KiB", deflate: deflateOn, size: 4096},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const fanout = 1000
			conns := make([]*Conn, fanout)
			opts := testOptions(Options{SendQueueSize: 4})
			opts.queues = NewQueueBudget(opts.MaxQueuedBytes) // shared, as an Upgrader's
			for i := range conns {
				conns[i] = newConn(nil, nil, opts, negotiated{deflate: bc.deflate})
				// Held: Send only queues, and no flush worker takes a
				// turn of a connection that has no socket.
				conns[i].Hold()
			}
			payload := text(bc.size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p := NewPrepared(Text, payload, 0, 1)
				for _, c := range conns {
					if err := c.Send(p); err != nil {
						b.Fatal(err)
					}
				}
				for _, c := range conns {
					for _, p := range c.sendQ {
						_ = c.frameFor(p)
					}
					c.sendQ = c.sendQ[:0]
					c.opts.queues.give(c.unqueueLocked()) // as a turn would
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fanout), "ns/send")
		})
	}
}

// queued returns how many messages wait for the connection's next turn.
func (c *Conn) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sendQ)
}

// BenchmarkWriteLoop measures the write path end to end over TCP
// loopback: enqueue, batch, writev.
func BenchmarkWriteLoop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 256<<10)
		for {
			if _, err := client.Read(buf); err != nil {
				return
			}
		}
	}()
	nc := <-accepted
	c := newConn(nc, nil, testOptions(Options{PingInterval: -1}), negotiated{})
	c.start()
	p := NewPrepared(Text, text(200), 0, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(p.plainFrame())))
	for b.Loop() {
		for c.queued() > c.opts.SendQueueSize/2 {
			time.Sleep(10 * time.Microsecond)
		}
		if err := c.Send(p); err != nil {
			b.Fatal(err)
		}
	}
	for c.queued() > 0 {
		time.Sleep(time.Millisecond)
	}
	c.Terminate(nil)
	<-c.Done()
	client.Close()
	<-drained
	frames, _, _ := c.Stats()
	b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
}

// TestTerminateKeepsDescriptorForOwner: flushTurn writes to the socket's
// descriptor without RawConn's reference count, so Terminate must not
// close the descriptor while another goroutine owns the write side (the
// number could be reused by a new socket and a write land there). It
// shuts the socket down instead, which the peer sees at once, and the
// owner's release closes it.
func TestTerminateKeepsDescriptorForOwner(t *testing.T) {
	if !pollSupported {
		t.Skip("raw writes only on Linux")
	}
	t.Parallel()
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) { <-c.Done() })
	rc := dialRaw(t, ts.URL, "")
	c := ts.nextConn(t)
	if c.fd < 0 {
		t.Fatal("no raw descriptor for a TCP connection")
	}
	c.mu.Lock()
	if !c.claimLocked() {
		c.mu.Unlock()
		t.Fatal("write side already owned")
	}
	c.mu.Unlock()
	released := false
	defer func() {
		if !released { // a failure below: let the cleanup's Done return
			c.release()
		}
	}()

	c.Terminate(ErrHeartbeatTimeout)
	if _, err := rc.readFrame(); err == nil {
		t.Fatal("peer read a frame after Terminate, want the end of the stream")
	}
	open := func() bool { return c.raw().control(func(int) {}) }
	if !open() {
		t.Fatal("Terminate closed the descriptor while the write side was owned")
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed before the owner released the write side")
	default:
	}
	// The owner's raw write now fails instead of reaching another socket.
	var scratch iovecScratch
	if _, _, err := writeNonBlocking(c.fd, [][]byte{[]byte("x")}, &scratch); err == nil {
		t.Error("write after Terminate succeeded")
	}
	released = true
	c.release()
	if err := waitDone(t, c, 5*time.Second); err != ErrHeartbeatTimeout {
		t.Errorf("cause %v, want ErrHeartbeatTimeout", err)
	}
	if open() {
		t.Error("descriptor still open after the owner released the write side")
	}
}
