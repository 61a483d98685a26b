package transport

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// eventEcho serves c the way Herald does: TryRead until ErrWouldBlock,
// then NotifyReadable, so no goroutine waits between messages. It counts
// the callback runs and reports the terminal error on ended.
type eventEcho struct {
	c     *Conn
	runs  atomic.Int32
	ended chan error
}

func (e *eventEcho) serve() {
	e.runs.Add(1)
	for {
		typ, msg, err := e.c.TryRead()
		if err == ErrWouldBlock {
			if !e.c.NotifyReadable(e.serve) {
				e.ended <- errors.New("NotifyReadable unsupported")
			}
			return
		}
		if err != nil {
			e.ended <- err
			return
		}
		if err := e.c.Send(NewPrepared(typ, msg, 0, 0)); err != nil {
			e.ended <- err
			return
		}
	}
}

// newEchoServer starts a server whose connections are served by an
// eventEcho (TryRead and NotifyReadable, as Herald does; the handler
// returns and the connection lives on); each connection's echo is sent on
// the returned channel, which holds up to conns of them. It skips the
// test where the epoll watcher is missing.
func newEchoServer(t *testing.T, conns int) (*testServer, chan *eventEcho) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the epoll watcher is Linux only")
	}
	ech := make(chan *eventEcho, conns)
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) {
		e := &eventEcho{c: c, ended: make(chan error, 1)}
		ech <- e
		e.serve()
	})
	return ts, ech
}

func TestNotifyReadable(t *testing.T) {
	ts, ech := newEchoServer(t, 1)
	rc := dialRaw(t, ts.URL, "")
	e := <-ech

	// Idle: no read buffer is held.
	checkFor(t, 2*time.Second, func() error {
		e.c.readMu.Lock()
		defer e.c.readMu.Unlock()
		if e.c.br != nil {
			return errors.New("idle connection still holds its read buffer")
		}
		return nil
	})

	// Whole frames, several in one write.
	rc.write(mframe(true, opText, []byte("one")), mframe(true, opText, []byte("two")))
	for _, want := range []string{"one", "two"} {
		if f := rc.mustRead(); string(f.payload) != want {
			t.Fatalf("echo %q, want %q", f.payload, want)
		}
	}
	// A frame cut inside its header, then inside its payload: TryRead
	// keeps the part that came and returns until the rest arrives.
	fr := mframe(true, opText, []byte("split across three writes"))
	for _, part := range [][]byte{fr[:1], fr[1:9], fr[9:]} {
		rc.write(part)
		time.Sleep(20 * time.Millisecond)
	}
	if f := rc.mustRead(); string(f.payload) != "split across three writes" {
		t.Fatalf("echo %q", f.payload)
	}
	// A fragmented message with a ping between its fragments.
	rc.write(mframe(false, opText, []byte("frag")), mframe(true, opPing, []byte("p")))
	time.Sleep(20 * time.Millisecond)
	rc.write(mframe(true, opContinuation, []byte("ment")))
	if f := rc.mustRead(); f.op != opPong || string(f.payload) != "p" {
		t.Fatalf("got op %d %q, want the pong", f.op, f.payload)
	}
	if f := rc.mustRead(); string(f.payload) != "fragment" {
		t.Fatalf("echo %q", f.payload)
	}
	if n := e.runs.Load(); n < 3 {
		t.Errorf("callback ran %d times; want one run per burst", n)
	}

	// The client goes away without a close frame: the pending callback
	// runs and sees the end.
	_ = rc.nc.Close()
	select {
	case err := <-e.ended:
		if err == nil || err == ErrWouldBlock {
			t.Fatalf("ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("callback not run after the peer left")
	}
	if err := waitDone(t, e.c, 5*time.Second); err == nil {
		t.Fatal("no cause recorded")
	}
}

// TestNotifyReadableAfterTerminate: a connection ended by the server
// while idle runs its pending callback, which sees the cause.
func TestNotifyReadableAfterTerminate(t *testing.T) {
	ts, ech := newEchoServer(t, 1)
	rc := dialRaw(t, ts.URL, "")
	defer rc.nc.Close()
	e := <-ech
	e.c.Terminate(ErrHeartbeatTimeout)
	select {
	case err := <-e.ended:
		if !errors.Is(err, ErrHeartbeatTimeout) {
			t.Fatalf("ended with %v, want the heartbeat timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("callback not run after Terminate")
	}
}

// busyGoroutines counts the process's goroutines but the callback
// runners waiting for a callback, which wait for no client.
func busyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		// An idle runner's own frame is the top one: it waits to
		// receive, not in a callback.
		lines := strings.SplitN(g, "\n", 3)
		if !(len(lines) > 1 && strings.Contains(lines[0], "[chan receive") && strings.Contains(lines[1], "transport.runCallbacks(")) {
			n++
		}
	}
	return n
}

// TestHalfFramesHoldNoGoroutine: clients that stop halfway through a
// frame (in its header, in the payload of a small frame, or in a frame
// larger than the read buffer, before or after the buffer filled) leave
// the server no goroutine waiting for them; each message is read once
// the rest arrives.
//
// Not parallel: it counts the process's goroutines.
func TestHalfFramesHoldNoGoroutine(t *testing.T) {
	const clients = 40
	ts, ech := newEchoServer(t, clients)
	conns := make([]*rawClient, clients)
	sizes := make([]int, clients)
	frames := make([][]byte, clients)
	cuts := make([]int, clients)
	for i := range conns {
		conns[i] = dialRaw(t, ts.URL, "")
		<-ech
		switch i % 4 {
		case 0: // inside the header
			sizes[i], cuts[i] = 100+i, 1
		case 1: // inside a small frame's payload
			sizes[i], cuts[i] = 100+i, 10
		case 2: // a large frame, before the read buffer is full
			sizes[i], cuts[i] = 3*readBufferSize+i, readBufferSize/2
		case 3: // a large frame, after the read buffer filled
			sizes[i], cuts[i] = 3*readBufferSize+i, readBufferSize+100
		}
		frames[i] = mframe(true, opBinary, bytes.Repeat([]byte{byte('a' + i%26)}, sizes[i]))
	}
	time.Sleep(100 * time.Millisecond)
	before := busyGoroutines()
	for i, rc := range conns {
		rc.write(frames[i][:cuts[i]])
	}
	// Wait for the callbacks that read the half frames to return (on a
	// loaded machine some still ran after 200 ms): a goroutine that waits
	// for the rest of a frame never does, and fails this.
	checkFor(t, 10*time.Second, func() error {
		if grown := busyGoroutines() - before; grown > clients/4 {
			return fmt.Errorf("%d clients stalled mid-frame hold %d more goroutines", clients, grown)
		}
		return nil
	})
	for i, rc := range conns {
		rc.write(frames[i][cuts[i]:])
	}
	for i, rc := range conns {
		f := rc.mustRead()
		if !bytes.Equal(f.payload, bytes.Repeat([]byte{byte('a' + i%26)}, sizes[i])) {
			t.Fatalf("client %d: echo of %d bytes, want %d bytes of %c", i, len(f.payload), sizes[i], rune('a'+i%26))
		}
	}
}

// TestTryReadChunked writes frames of sizes around every length encoding
// and around the read buffer's size, cut into chunks of random sizes with
// pauses between them, and checks that TryRead delivers each message
// exactly, whether the frame waited in the read buffer or, too large for
// it, in one made for it.
func TestTryReadChunked(t *testing.T) {
	ts, ech := newEchoServer(t, 1)
	rc := dialRaw(t, ts.URL, "")
	<-ech
	const hdr16 = 2 + 2 + 4 // header of a masked frame with a 16-bit length
	sizes := []int{0, 1, 125, 126, 127, 300,
		readBufferSize - hdr16 - 1, readBufferSize - hdr16, readBufferSize - hdr16 + 1, 3 * readBufferSize}
	var stream []byte
	for i, n := range sizes {
		stream = append(stream, mframe(true, opBinary, bytes.Repeat([]byte{byte('a' + i)}, n))...)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(700))
		rc.write(stream[:n])
		stream = stream[n:]
		if rng.IntN(4) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	for i, n := range sizes {
		f := rc.mustRead()
		if len(f.payload) != n || (n > 0 && (f.payload[0] != byte('a'+i) || f.payload[n-1] != byte('a'+i))) {
			t.Fatalf("message %d: %d bytes, want %d of %c", i, len(f.payload), n, 'a'+i)
		}
	}
}

// TestTryReadRandomStreams sends random streams (messages on both sides
// of the read buffer's size and far above it, some fragmented, pings
// between frames) in random chunks with pauses, and checks that TryRead
// delivers every message whole and in order and answers every ping.
func TestTryReadRandomStreams(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ts, ech := newEchoServer(t, 1)
			rc := dialRaw(t, ts.URL, "")
			<-ech
			rng := rand.New(rand.NewPCG(seed, 7))
			var stream []byte
			var want [][]byte
			pings := 0
			for i := range 40 {
				var n int
				switch rng.IntN(4) {
				case 0:
					n = rng.IntN(200)
				case 1:
					n = readBufferSize - 40 + rng.IntN(80)
				case 2:
					n = readBufferSize + rng.IntN(3*readBufferSize)
				default:
					n = 20000 + rng.IntN(30000)
				}
				msg := make([]byte, n)
				for j := range msg {
					msg[j] = byte(rng.IntN(256))
				}
				want = append(want, msg)
				parts, rest := 1+rng.IntN(3), msg
				for p := range parts {
					chunk := rest
					if p < parts-1 {
						k := rng.IntN(len(rest) + 1)
						chunk, rest = rest[:k], rest[k:]
					}
					op := byte(opContinuation)
					if p == 0 {
						op = opBinary
					}
					stream = append(stream, mframe(p == parts-1, op, chunk)...)
					if rng.IntN(3) == 0 {
						stream = append(stream, mframe(true, opPing, []byte{byte(i)})...)
						pings++
					}
				}
			}
			frames := make(chan rawFrame, len(want)+pings)
			errc := make(chan error, 1)
			go func() { // read while writing, so that neither side's buffers fill
				for range len(want) + pings {
					f, err := rc.readFrame()
					if err != nil {
						errc <- err
						return
					}
					frames <- f
				}
			}()
			for len(stream) > 0 {
				n := min(len(stream), 1+rng.IntN(6000))
				rc.write(stream[:n])
				stream = stream[n:]
				if rng.IntN(3) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			got, pongs := 0, 0
			for got+pongs < len(want)+pings {
				select {
				case f := <-frames:
					if f.op == opPong {
						pongs++
						continue
					}
					if !bytes.Equal(f.payload, want[got]) {
						t.Fatalf("message %d: %d bytes, want %d (same length, other bytes: %v)",
							got, len(f.payload), len(want[got]), len(f.payload) == len(want[got]))
					}
					got++
				case err := <-errc:
					t.Fatalf("after %d messages and %d pongs: %v", got, pongs, err)
				}
			}
		})
	}
}

// BenchmarkRunCallback is the handoff of a NotifyReadable callback to a
// runner, as the read poller makes it for each readable connection.
func BenchmarkRunCallback(b *testing.B) {
	done := make(chan struct{})
	f := func() { done <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		runCallback(f)
		<-done
	}
}

// TestBufferedAtUpgrade: a frame sent in the same write as the upgrade
// request is held by the connection (Buffered), and one sent after it is
// not; served as Herald serves a new connection (NotifyReadable at once
// unless Buffered), both are echoed.
func TestBufferedAtUpgrade(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll watcher is Linux only")
	}
	for _, tc := range []struct {
		name  string
		early bool
	}{
		{"frame after the welcome", false},
		{"frame with the upgrade request", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buffered := make(chan bool, 1)
			ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) {
				e := &eventEcho{c: c, ended: make(chan error, 1)}
				b := c.Buffered()
				buffered <- b
				if !b && c.NotifyReadable(e.serve) {
					return
				}
				e.serve()
			})
			var early []byte
			if tc.early {
				early = mframe(true, opText, []byte("early"))
			}
			rc := dialRawWith(t, ts.URL, "", early)
			if got := <-buffered; got != tc.early {
				t.Fatalf("Buffered() = %v, want %v", got, tc.early)
			}
			if !tc.early {
				rc.write(mframe(true, opText, []byte("early")))
			}
			if f := rc.mustRead(); string(f.payload) != "early" {
				t.Fatalf("echo %q, want %q", f.payload, "early")
			}
		})
	}
}
