package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func dialCoder(tb testing.TB, ts *testServer, opts *websocket.DialOptions) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ts.wsURL(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	tb.Cleanup(func() { c.CloseNow() })
	return c
}

func TestEchoCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		server          Options
		client          websocket.CompressionMode
		wantCompression bool
	}{
		{name: "off", server: Options{}, client: websocket.CompressionContextTakeover},
		{name: "client off", server: Options{Compression: true}, client: websocket.CompressionDisabled},
		{name: "no context takeover", server: Options{Compression: true}, client: websocket.CompressionNoContextTakeover, wantCompression: true},
		{name: "client context takeover refused", server: Options{Compression: true}, client: websocket.CompressionContextTakeover, wantCompression: true},
		{name: "context takeover both", server: Options{Compression: true, ContextTakeover: true}, client: websocket.CompressionContextTakeover, wantCompression: true},
		{name: "server context, client none", server: Options{Compression: true, ContextTakeover: true}, client: websocket.CompressionNoContextTakeover, wantCompression: true},
		{name: "level 9 compress all", server: Options{Compression: true, CompressionLevel: 9, CompressionThreshold: -1}, client: websocket.CompressionNoContextTakeover, wantCompression: true},
		{name: "huffman only", server: Options{Compression: true, CompressionLevel: -2}, client: websocket.CompressionNoContextTakeover, wantCompression: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tt.server, nil)
			c := dialCoder(t, ts, &websocket.DialOptions{CompressionMode: tt.client, CompressionThreshold: 64})
			sc := ts.nextConn(t)
			if sc.Compressed() != tt.wantCompression {
				t.Fatalf("Compressed() = %v, want %v", sc.Compressed(), tt.wantCompression)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Several similar messages so that context takeover matters,
			// sizes on both sides of the thresholds.
			for i, n := range []int{0, 10, 100, 2000, 2000, 40000, 3, 5000} {
				typ := websocket.MessageText
				if i%2 == 1 {
					typ = websocket.MessageBinary
				}
				msg := text(n)
				if err := c.Write(ctx, typ, msg); err != nil {
					t.Fatal(err)
				}
				gtyp, got, err := c.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if gtyp != typ || !bytes.Equal(got, msg) {
					t.Fatalf("message %d: got type %v len %d, want %v len %d", i, gtyp, len(got), typ, len(msg))
				}
			}
			// The counters are updated after the write returns, which can
			// be after the client has the message.
			checkFor(t, time.Second, func() error {
				framesOut, bytesOut, bytesIn := sc.Stats()
				if framesOut != 8 || bytesOut == 0 || bytesIn == 0 {
					return fmt.Errorf("Stats() = %d, %d, %d", framesOut, bytesOut, bytesIn)
				}
				return nil
			})
			if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Fatal(err)
			}
			var ce *CloseError
			if err := waitDone(t, sc, 2*time.Second); !errors.As(err, &ce) || ce.Code != CloseNormal {
				t.Errorf("Err() = %v, want close 1000", err)
			}
		})
	}
}

func TestHandshakeExtras(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{Subprotocols: []string{"herald.v2", "herald.v1"}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, ts.wsURL(), &websocket.DialOptions{Subprotocols: []string{"herald.v1", "herald.v2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if got := resp.Header.Get("X-Request-ID"); got != "req-42" {
		t.Errorf("X-Request-ID = %q", got)
	}
	if c.Subprotocol() != "herald.v2" {
		t.Errorf("client subprotocol %q, want server preference herald.v2", c.Subprotocol())
	}
	sc := ts.nextConn(t)
	if sc.Subprotocol() != "herald.v2" || sc.RemoteAddr() == nil {
		t.Errorf("server subprotocol %q addr %v", sc.Subprotocol(), sc.RemoteAddr())
	}
}

func TestServerClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reading bool // the handler reads concurrently with Close
	}{
		{name: "reader running", reading: true},
		{name: "no reader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			type result struct {
				err  error
				took time.Duration
			}
			closed := make(chan result, 1)
			ts := newTestServer(t, Options{}, func(c *Conn) {
				if tt.reading {
					go func() {
						for {
							if _, _, err := c.Read(context.Background()); err != nil {
								return
							}
						}
					}()
				}
				for i := range 10 {
					_ = c.WriteText(fmt.Appendf(nil, "msg %d", i))
				}
				start := time.Now()
				err := c.Close(CloseGoingAway, "shutting down")
				closed <- result{err, time.Since(start)}
			})
			c := dialCoder(t, ts, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i := range 10 {
				_, msg, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if want := fmt.Sprintf("msg %d", i); string(msg) != want {
					t.Fatalf("got %q, want %q", msg, want)
				}
			}
			_, _, err := c.Read(ctx)
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Fatalf("client Read = %v, want 1001", err)
			}
			res := <-closed
			if res.err != nil {
				t.Fatalf("Close = %v", res.err)
			}
			if res.took > 2*time.Second {
				t.Errorf("Close took %v: the peer's reply was not noticed", res.took)
			}
			sc := ts.nextConn(t)
			var ce *CloseError
			if !errors.As(sc.Err(), &ce) || ce.Code != CloseGoingAway {
				t.Errorf("Err() = %v", sc.Err())
			}
			if err := sc.Send(NewPrepared(Text, []byte("late"), 0, 0)); !errors.Is(err, ErrClosed) {
				t.Errorf("Send after close = %v, want ErrClosed", err)
			}
			if err := sc.Close(CloseNormal, ""); err != nil {
				t.Errorf("second Close = %v", err)
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	opts := Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}

	t.Run("silent client terminated", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, opts, nil)
		rc := dialRaw(t, ts.URL, "")
		_ = rc
		sc := ts.nextConn(t)
		start := time.Now()
		err := waitDone(t, sc, 2*time.Second)
		if !errors.Is(err, ErrHeartbeatTimeout) {
			t.Fatalf("Err() = %v, want ErrHeartbeatTimeout", err)
		}
		// Ping at ~50ms, deadline ~150ms: never before the pong timeout
		// (waitDone bounds the other side).
		if d := time.Since(start); d < opts.PongTimeout {
			t.Errorf("terminated after %v, before the pong timeout", d)
		}
		f := rc.mustRead()
		if f.op != opPing || len(f.payload) != 8 {
			t.Errorf("got op %d len %d, want an 8-byte ping", f.op, len(f.payload))
		}
	})

	t.Run("client whose answers wait unread is kept", func(t *testing.T) {
		t.Parallel()
		// A server that does not get round to reading (here: never
		// reads; in production: a node short of CPU) must not take the
		// client's unread pongs for silence.
		ts := newTestServer(t, opts, func(c *Conn) { <-c.Done() })
		rc := dialRaw(t, ts.URL, "")
		sc := ts.nextConn(t)
		for range 6 { // six pings: several pong timeouts' worth
			f := rc.mustRead()
			if f.op != opPing {
				t.Fatalf("got op %d, want pings only", f.op)
			}
			rc.write(mframe(true, opPong, f.payload))
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("connection with unread pongs ended: %v", err)
		}
	})

	t.Run("client whose answer waits in the read buffer is kept", func(t *testing.T) {
		t.Parallel()
		// The application holds a message it got from a blocking Read
		// whose payload came, after the ping, in the same segment as the
		// pong: the pong waits in the connection's read buffer, where
		// FIONREAD does not see it, and no frame was read after the ping
		// (the message's header came before). The client answered; this
		// process has not read the answer.
		opts := Options{PingInterval: 300 * time.Millisecond, PongTimeout: 300 * time.Millisecond}
		got := make(chan string, 1)
		ts := newTestServer(t, opts, func(c *Conn) {
			_, msg, err := c.Read(context.Background())
			if err == nil {
				got <- string(msg)
			}
			<-c.Done() // holds it: reads no more
		})
		rc := dialRaw(t, ts.URL, "")
		sc := ts.nextConn(t)
		m := mframe(true, opText, []byte("held message"))
		rc.write(m[:10]) // the header and part of the payload, before the ping
		f := rc.mustRead()
		if f.op != opPing {
			t.Fatalf("got op %d, want a ping", f.op)
		}
		rc.write(m[10:], mframe(true, opPong, f.payload))
		select {
		case msg := <-got:
			if msg != "held message" {
				t.Fatalf("read %q", msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the message was not read")
		}
		// Past the pong's deadline, then a second ping's.
		time.Sleep(opts.PingInterval + 3*opts.PongTimeout)
		if err := sc.Err(); err != nil {
			t.Fatalf("connection whose pong waits in its read buffer ended: %v", err)
		}
	})

	t.Run("pings every interval when the timeout is longer", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PongTimeout: 2 * time.Second}, nil)
		rc := dialRaw(t, ts.URL, "")
		// Answer each ping: they keep coming (each read waits up to 5 s),
		// while the connection stays.
		sc := ts.nextConn(t)
		for range 8 {
			f := rc.mustRead()
			if f.op != opPing {
				t.Fatalf("got op %d, want pings only", f.op)
			}
			rc.write(mframe(true, opPong, f.payload))
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("connection ended: %v", err)
		}
	})

	t.Run("no control queue kept between pings", func(t *testing.T) {
		t.Parallel()
		// Every idle connection gets pings: the queue a ping went through
		// is not kept until the next one.
		ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PongTimeout: 2 * time.Second}, nil)
		c := dialCoder(t, ts, nil)
		c.CloseRead(context.Background()) // answers pings
		sc := ts.nextConn(t)
		// Two queues took turns holding a ping before: wait for a few.
		checkFor(t, 5*time.Second, func() error {
			if n := sc.framesOut.Load(); n < 3 {
				return fmt.Errorf("%d pings written", n)
			}
			return nil
		})
		checkFor(t, 5*time.Second, func() error {
			if err := sc.Err(); err != nil {
				t.Fatalf("connection ended: %v", err) // closing clears the queue
			}
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if sc.ctrlQ != nil {
				return fmt.Errorf("control queue held between pings: len %d cap %d", len(sc.ctrlQ), cap(sc.ctrlQ))
			}
			return nil
		})
	})

	t.Run("no data queues kept once quiet", func(t *testing.T) {
		t.Parallel()
		// A burst grows the two data queues a connection swaps; the first
		// heartbeat with no data behind it lets them go.
		ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PongTimeout: 2 * time.Second}, nil)
		c := dialCoder(t, ts, nil)
		sc := ts.nextConn(t)
		sc.Hold() // the whole burst in one turn
		const burst = 40
		for i := range burst {
			if err := sc.Send(NewPrepared(Text, []byte{byte(i)}, 0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if err := sc.Release(nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for i := range burst {
			if _, b, err := c.Read(ctx); err != nil || len(b) != 1 || b[0] != byte(i) {
				t.Fatalf("message %d: %v %v", i, b, err)
			}
		}
		c.CloseRead(context.Background()) // answers pings from now on
		pings := sc.framesOut.Load() + 2
		checkFor(t, 5*time.Second, func() error {
			if n := sc.framesOut.Load(); n < pings {
				return fmt.Errorf("%d frames written, want %d", n, pings)
			}
			return nil
		})
		checkFor(t, 5*time.Second, func() error {
			if err := sc.Err(); err != nil {
				t.Fatalf("connection ended: %v", err) // closing clears the queues
			}
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if sc.sendQ != nil || sc.w.data != nil {
				return fmt.Errorf("data queues held by a quiet connection: cap %d and %d", cap(sc.sendQ), cap(sc.w.data))
			}
			return nil
		})
	})

	t.Run("responsive client kept", func(t *testing.T) {
		t.Parallel()
		// A timeout a loaded CI machine's scheduling cannot reach; the
		// interval still makes several pings within the test.
		ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PongTimeout: 2 * time.Second}, nil)
		c := dialCoder(t, ts, nil)
		ctx := c.CloseRead(context.Background()) // answers pings
		sc := ts.nextConn(t)
		select {
		case <-sc.Done():
			t.Fatalf("connection ended: %v", sc.Err())
		case <-ctx.Done():
			t.Fatal("client connection ended")
		case <-time.After(400 * time.Millisecond):
		}
		// Pongs keep coming: LastSeen moves past a point after the upgrade.
		after := time.Now()
		checkFor(t, 5*time.Second, func() error {
			if !sc.LastSeen().After(after) {
				return fmt.Errorf("LastSeen %v ago: no pong seen", time.Since(sc.LastSeen()))
			}
			return nil
		})
	})
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	start := make(chan *Prepared)
	ts := newTestServer(t, Options{SendQueueSize: 4, PingInterval: -1}, func(c *Conn) {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	_ = start

	fast := dialCoder(t, ts, nil)
	fastConn := ts.nextConn(t)
	slow := dialRaw(t, ts.URL, "")
	if tcp, ok := slow.nc.(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	slowConn := ts.nextConn(t)

	big := NewPrepared(Binary, make([]byte, 256<<10), 0, 0)
	var err error
	sent := 0
	for ; sent < 5000; sent++ {
		if err = slowConn.Send(big); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Send = %v after %d messages, want ErrSlowConsumer", err, sent)
	}
	t.Logf("queue filled after %d messages of 256 KiB", sent)
	cause := waitDone(t, slowConn, 3*time.Second)
	var ce *CloseError
	if !errors.Is(cause, ErrSlowConsumer) || !errors.As(cause, &ce) || ce.Code != CloseSlowConsumer {
		t.Fatalf("Err() = %v, want ErrSlowConsumer with close 4008", cause)
	}
	if err := slowConn.Send(big); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after slow close = %v, want ErrClosed", err)
	}

	// The other connection is unaffected.
	if err := fastConn.Send(NewPrepared(Text, []byte("still here"), 0, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, msg, err := fast.Read(ctx)
	if err != nil || string(msg) != "still here" {
		t.Fatalf("fast client Read = %q, %v", msg, err)
	}
}

func TestContextTakeoverBatch(t *testing.T) {
	t.Parallel()
	const n = 200
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = text(500 + i*37)
	}
	ts := newTestServer(t, Options{Compression: true, ContextTakeover: true, CompressionThreshold: -1}, func(c *Conn) {
		// Queued back to back so that the writer batches them and
		// compresses several into one arena.
		for _, m := range msgs {
			if err := c.Send(NewPrepared(Binary, m, -1, 0)); err != nil {
				return
			}
		}
		_, _, _ = c.Read(context.Background())
	})
	c := dialCoder(t, ts, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	// The bound is on each message, not on all 200: it catches a writer
	// that stops, not a slow machine. Compressing and inflating the 840 KB
	// under -race takes 1-2 s in all on an idle 2-core box but 5-11 s at a
	// load average of 25-40, where one 5 s bound over the whole stream
	// failed about one run in four; the gap between two messages stays
	// well under a second there.
	for i, want := range msgs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, got, err := c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d corrupted", i)
		}
	}
	sc := ts.nextConn(t)
	if frames, _, _ := sc.Stats(); frames == 0 {
		t.Error("no frames counted")
	}
}

// TestHoldRelease: what is sent while held waits, and Release's message
// goes out first.
func TestHoldRelease(t *testing.T) {
	release := make(chan struct{})
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) {
		c.Hold()
		for _, m := range []string{"a", "b"} {
			if err := c.Send(NewPrepared(Text, []byte(m), 0, 0)); err != nil {
				t.Error(err)
			}
		}
		<-release
		if err := c.Release(NewPrepared(Text, []byte("first"), 0, 0)); err != nil {
			t.Error(err)
		}
		echo(c)
	})
	rc := dialRaw(t, ts.URL, "")
	_ = rc.nc.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if _, err := rc.br.Peek(1); err == nil {
		t.Fatal("a frame arrived while held")
	}
	close(release)
	for _, want := range []string{"first", "a", "b"} {
		if f := rc.mustRead(); string(f.payload) != want {
			t.Fatalf("got %q, want %q", f.payload, want)
		}
	}
}

// TestReleaseWithoutFirst: Release(nil) only resumes writing.
func TestReleaseWithoutFirst(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) {
		c.Hold()
		if err := c.Send(NewPrepared(Text, []byte("a"), 0, 0)); err != nil {
			t.Error(err)
		}
		if err := c.Release(nil); err != nil {
			t.Error(err)
		}
		echo(c)
	})
	rc := dialRaw(t, ts.URL, "")
	if f := rc.mustRead(); string(f.payload) != "a" {
		t.Fatalf("got %q, want %q", f.payload, "a")
	}
}

// TestPartialWrites: a client that stops reading while more is queued
// than the socket buffers hold gets every message, intact and in order,
// once it reads again. The frames go out through partial non-blocking
// writes and the blocked-write goroutine.
func TestPartialWrites(t *testing.T) {
	t.Parallel()
	// The queue holds all 7.5 MiB at once whether or not the flush workers
	// got to run meanwhile (a loaded machine): the bytes bound is not the
	// point here, the partial writes are.
	c, rc := dialSmallBuffers(t, Options{SendQueueSize: 256, SendQueueBytes: 16 << 20, PingInterval: -1}, 64<<10, 0)

	// 120 messages of 64 KiB + a few bytes each, every one with its index
	// at the start and the end: 7.5 MiB, far more than loopback buffers
	// take while nobody reads.
	const n, size = 120, 64<<10 + 7
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i + j)
		}
		if err := c.Send(NewPrepared(Binary, b, 0, 0)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	waitBlocked(t, c)
	for i := 0; i < n; i++ {
		f, err := rc.readFrame()
		if err != nil {
			t.Fatalf("message %d: %v (server: %v)", i, err, c.Err())
		}
		if f.op != opBinary || len(f.payload) != size {
			t.Fatalf("message %d: op %d, %d bytes", i, f.op, len(f.payload))
		}
		for j, b := range f.payload {
			if b != byte(i+j) {
				t.Fatalf("message %d: byte %d is %d, want %d", i, j, b, byte(i+j))
			}
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
	framesOut, _, _ := c.Stats()
	if framesOut != n {
		t.Errorf("framesOut = %d, want %d", framesOut, n)
	}
}

// TestSlowReaderKeepsUp: WriteTimeout bounds each blocking write call,
// not a whole batch, so a peer that reads slowly but steadily is not cut
// off while a batch many times the socket buffers drains.
func TestSlowReaderKeepsUp(t *testing.T) {
	t.Parallel()
	// A small send buffer, or the kernel takes the whole batch at once.
	// WriteTimeout is what the reader may stall between two reads: 1 s,
	// not less, as a loaded machine delays the reader's 30 ms sleeps
	// by hundreds of milliseconds at times (400 ms failed at load 27).
	const writeTimeout = time.Second
	c, rc := dialSmallBuffers(t, Options{WriteTimeout: writeTimeout, PingInterval: -1}, 64<<10, 64<<10)
	// 3 MiB in one batch (held, then released at once): about 3 s at
	// the ≈ 1 MiB/s read below, well over WriteTimeout.
	const n, size = 48, 64 << 10
	c.Hold()
	for i := 1; i < n; i++ {
		if err := c.Send(NewPrepared(Binary, make([]byte, size), 0, 0)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := c.Release(NewPrepared(Binary, make([]byte, size), 0, 0)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	buf := make([]byte, 32<<10)
	total, want := 0, n*(size+4) // a 64 KiB payload has a 4-byte header
	for total < want {
		_ = rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := rc.br.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d bytes in %s: %v (server: %v)", total, want, time.Since(start), err, c.Err())
		}
		total += m
		time.Sleep(30 * time.Millisecond)
	}
	took := time.Since(start)
	if err := c.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
	if took < 2*writeTimeout {
		// The test is about a reader slower than WriteTimeout; this one
		// was not, so the point was not tested.
		t.Skipf("drained in %s: the socket buffers were larger than expected", took)
	}
}

// TestWriteAfterBlockedWrite: a deadline left on the socket by a write
// that had to wait must not fail a later non-blocking write.
func TestWriteAfterBlockedWrite(t *testing.T) {
	t.Parallel()
	c, rc := dialSmallBuffers(t, Options{WriteTimeout: time.Second, PingInterval: -1}, 64<<10, 32<<10)
	c.Hold()
	for i := 0; i < 15; i++ {
		if err := c.Send(NewPrepared(Binary, make([]byte, 64<<10), 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Release(NewPrepared(Binary, make([]byte, 64<<10), 0, 0)); err != nil {
		t.Fatal(err)
	}
	waitBlocked(t, c)
	for i := 0; i < 16; i++ {
		if _, err := rc.readFrame(); err != nil {
			t.Fatalf("message %d: %v (server: %v)", i, err, c.Err())
		}
	}
	time.Sleep(1200 * time.Millisecond) // past the blocked write's deadline
	if err := c.Send(NewPrepared(Text, []byte("later"), 0, 0)); err != nil {
		t.Fatal(err)
	}
	if f := rc.mustRead(); string(f.payload) != "later" {
		t.Fatalf("got %q", f.payload)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
}

// dialSmallBuffers starts a server that only reads, connects a raw client
// with a receive buffer of rbuf bytes and, when wbuf > 0, shrinks the
// server connection's send buffer, so that bursts outgrow the sockets.
func dialSmallBuffers(t *testing.T, opts Options, rbuf, wbuf int) (*Conn, *rawClient) {
	t.Helper()
	ts := newTestServer(t, opts, func(c *Conn) {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	rc := dialRaw(t, ts.URL, "")
	if tcp, ok := rc.nc.(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(rbuf)
	}
	c := ts.nextConn(t)
	if tcp, ok := c.nc.(interface{ SetWriteBuffer(int) error }); ok && wbuf > 0 {
		_ = tcp.SetWriteBuffer(wbuf)
	}
	return c, rc
}

// waitBlocked waits until a write of c is waiting for its peer.
func waitBlocked(t *testing.T, c *Conn) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.blocked {
			return errors.New("no write is waiting for the peer")
		}
		return nil
	})
}

// TestTakeoverBudget: with context takeover each connection keeps a
// flate writer from its first compressed message and the 32 KiB window
// of its client's compressed messages; Options.Takeover bounds them
// together. A connection whose writer does not fit gets its messages
// compressed one by one, which a client that allowed takeover decodes
// all the same; one whose window does not fit is closed with 1013. The
// state is given back when the connections end.
func TestTakeoverBudget(t *testing.T) {
	t.Parallel()
	writer := writerCost(DefaultCompressionLevel)
	budget := NewReadBudget(writer + windowSize)
	// Letters at random: about 2,400 B compressed on its own, a few bytes
	// when the writer remembers the same message.
	msg := make([]byte, 4000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range msg {
		msg[i] = 'a' + byte(rng.IntN(26))
	}
	ts := newTestServer(t, Options{Compression: true, ContextTakeover: true, Takeover: budget, PingInterval: -1}, func(c *Conn) {
		for {
			typ, m, err := c.Read(context.Background())
			if err != nil {
				return
			}
			for range 3 { // the same message thrice: takeover shrinks the 2nd and 3rd
				if c.Send(NewPrepared(typ, m, 0, 0)) != nil {
					return
				}
			}
		}
	})
	roundTrip := func(c *websocket.Conn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %v (%d bytes)", err, len(got))
			}
		}
	}
	first := dialCoder(t, ts, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	roundTrip(first)
	firstConn := ts.nextConn(t)
	if got := budget.Used(); got != writer+windowSize {
		t.Fatalf("takeover state %d B after one connection's messages, want a writer and a window (%d)", got, writer+windowSize)
	}
	// Stats count a write once it has returned, maybe after the client
	// has read it.
	wrote := func(c *Conn, frames uint64) uint64 {
		t.Helper()
		var out uint64
		checkFor(t, 5*time.Second, func() error {
			var f uint64
			if f, out, _ = c.Stats(); f != frames {
				return fmt.Errorf("%d frames written, want %d", f, frames)
			}
			return nil
		})
		return out
	}
	firstOut := wrote(firstConn, 3)

	// The budget is full: the second connection's writer does not fit,
	// its messages are compressed one by one (and bigger on the wire), and
	// its window does not fit either: its client's compressed message
	// closes it.
	second := dialCoder(t, ts, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover, CompressionThreshold: 1 << 20})
	secondConn := ts.nextConn(t)
	if err := secondConn.Send(NewPrepared(Text, msg, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := secondConn.Send(NewPrepared(Text, msg, 0, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if _, got, err := second.Read(ctx); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("second connection, compressed one by one: %v (%d bytes)", err, len(got))
		}
	}
	// Per message: 2,512 B against 1,255 (level 1 finds the repeats).
	if secondOut := wrote(secondConn, 2); secondOut/2 < firstOut/3*3/2 {
		t.Errorf("second connection wrote %d B for two messages, first %d B for three: not compressed one by one?", secondOut, firstOut)
	}
	if got := budget.Used(); got != writer+windowSize || budget.Refused() != 1 {
		t.Fatalf("after the second connection's writer was refused: %d B, %d refusals; want %d and 1", got, budget.Refused(), writer+windowSize)
	}
	third := dialCoder(t, ts, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover, CompressionThreshold: 1})
	thirdConn := ts.nextConn(t)
	if err := third.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
	err := waitDone(t, thirdConn, 5*time.Second)
	var ce *CloseError
	if !errors.Is(err, ErrReadsFull) || !errors.As(err, &ce) || ce.Code != CloseTryAgainLater {
		t.Fatalf("third connection, its window over the budget: Err = %v, want 1013 and ErrReadsFull", err)
	}
	firstConn.Terminate(nil)
	secondConn.Terminate(nil)
	checkFor(t, 5*time.Second, func() error {
		if got := budget.Used(); got != 0 {
			return fmt.Errorf("takeover state %d B after the connections ended, want 0", got)
		}
		return nil
	})
}

// TestSendNowWritesOnCallersGoroutine: SendNow takes the connection's
// turn itself, so its frame is written while no flush worker can run
// (its shard is locked: Send, which hands the turn to the shard, would
// wait), and what follows with Send still goes out after it.
func TestSendNowWritesOnCallersGoroutine(t *testing.T) {
	sent := make(chan error, 1)
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) {
		c.shard.mu.Lock()
		done := make(chan error, 1)
		go func() { done <- c.SendNow(NewPrepared(Text, []byte("now"), 0, 0)) }()
		select {
		case err := <-done:
			sent <- err
		case <-time.After(5 * time.Second):
			sent <- errors.New("SendNow waited for the flush shard")
			c.shard.mu.Unlock()
			<-done
			return
		}
		c.shard.mu.Unlock()
		if err := c.Send(NewPrepared(Text, []byte("later"), 0, 0)); err != nil {
			t.Error(err)
		}
		echo(c)
	})
	rc := dialRaw(t, ts.URL, "")
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"now", "later"} {
		if f := rc.mustRead(); string(f.payload) != want {
			t.Fatalf("got %q, want %q", f.payload, want)
		}
	}
}
