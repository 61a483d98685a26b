package transport

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// waitUsed waits until the budget counts want bytes.
func waitUsed(t *testing.T, b *ReadBudget, want int64) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		if got := b.Used(); got != want {
			return fmt.Errorf("read budget counts %d B, want %d", got, want)
		}
		return nil
	})
}

// TestReadBudget: clients that each declare a large frame and send a
// part of it past the 4 KiB buffer hold a buffer of the frame's size;
// together they never pass MaxReadingBytes: the one whose buffer does
// not fit is closed with 1013 and Err reports ErrReadsFull. Clients that
// go away mid-frame, and connections the server ends, give their bytes
// back; a complete large message still passes once there is room.
func TestReadBudget(t *testing.T) {
	t.Parallel()
	const size = 60_000
	const grown = 8 + size // header with 16-bit length and mask, then payload
	budget := NewReadBudget(3 * grown)
	ts, results := tryReadingServer(t, Options{ReadLimit: 64 << 10, Reading: budget, PingInterval: -1})
	partial := mframe(true, opBinary, make([]byte, size))[:grown-1000]

	var clients []*rawClient
	var conns []*Conn
	for i := range 3 {
		rc := dialRaw(t, ts.URL, "")
		c := ts.nextConn(t)
		rc.write(partial)
		waitUsed(t, budget, int64((i+1)*grown))
		clients, conns = append(clients, rc), append(conns, c)
	}
	over := dialRaw(t, ts.URL, "")
	overConn := ts.nextConn(t)
	over.write(partial)
	if code, reason := over.expectClose(); code != CloseTryAgainLater {
		t.Fatalf("fourth large frame: close %d %q, want 1013", code, reason)
	}
	if err := waitDone(t, overConn, 5*time.Second); !errors.Is(err, ErrReadsFull) {
		t.Fatalf("Err = %v, want ErrReadsFull", err)
	}
	if r := nextResult(t, results); !errors.Is(r.err, ErrReadsFull) {
		t.Fatalf("TryRead = %v, want ErrReadsFull", r.err)
	}
	if got := budget.Used(); got != 3*grown {
		t.Fatalf("after the refusal the budget counts %d B, want %d", got, 3*grown)
	}
	if budget.Refused() != 1 {
		t.Fatalf("Refused = %d, want 1", budget.Refused())
	}

	// One client goes away mid-frame, the server ends another, the third
	// finishes its frame.
	clients[0].nc.Close()
	conns[1].Terminate(nil)
	clients[2].write(mframe(true, opBinary, make([]byte, size))[grown-1000:])
	waitUsed(t, budget, 0)

	// A complete large message passes.
	rc := dialRaw(t, ts.URL, "")
	ts.nextConn(t)
	rc.write(mframe(true, opBinary, make([]byte, size)))
	for {
		r := nextResult(t, results)
		if r.err == nil && len(r.msg) == size {
			break
		}
	}
	waitUsed(t, budget, 0)
}

// TestReadBudgetFragments: a fragmented message's assembly buffer counts
// in the budget too, in Read as in TryRead, and is given back when its
// client goes away before the last fragment.
func TestReadBudgetFragments(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"Read", "TryRead"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			budget := NewReadBudget(40 << 10)
			opts := Options{ReadLimit: 1 << 20, Reading: budget, PingInterval: -1}
			var ts *testServer
			if mode == "Read" {
				ts, _ = readingServer(t, opts)
			} else {
				ts, _ = tryReadingServer(t, opts)
			}
			rc := dialRaw(t, ts.URL, "")
			c := ts.nextConn(t)
			rc.write(mframe(false, opBinary, make([]byte, 3000)), mframe(false, opContinuation, make([]byte, 3000)))
			checkFor(t, 5*time.Second, func() error {
				if budget.Used() == 0 {
					return errors.New("the assembly buffer is not counted")
				}
				return nil
			})
			rc.nc.Close()
			waitDone(t, c, 5*time.Second)
			waitUsed(t, budget, 0)

			rc = dialRaw(t, ts.URL, "")
			c = ts.nextConn(t)
			frames := [][]byte{mframe(false, opBinary, make([]byte, 3000))}
			for range 20 {
				frames = append(frames, mframe(false, opContinuation, make([]byte, 3000)))
			}
			rc.write(frames...)
			if code, reason := rc.expectClose(); code != CloseTryAgainLater {
				t.Fatalf("fragments past the budget: close %d %q, want 1013", code, reason)
			}
			if err := waitDone(t, c, 5*time.Second); !errors.Is(err, ErrReadsFull) {
				t.Fatalf("Err = %v, want ErrReadsFull", err)
			}
			waitUsed(t, budget, 0)
		})
	}
}

// TestReadBudgetBlockingRead: in Read, a large frame's payload counts
// while it arrives.
func TestReadBudgetBlockingRead(t *testing.T) {
	t.Parallel()
	const size = 60_000
	budget := NewReadBudget(size)
	ts, results := readingServer(t, Options{ReadLimit: 64 << 10, Reading: budget, PingInterval: -1})
	f := mframe(true, opBinary, make([]byte, size))
	rc := dialRaw(t, ts.URL, "")
	c := ts.nextConn(t)
	rc.write(f[:5000])
	waitUsed(t, budget, size)
	over := dialRaw(t, ts.URL, "")
	ts.nextConn(t)
	over.write(f[:5000])
	if code, reason := over.expectClose(); code != CloseTryAgainLater {
		t.Fatalf("second large frame: close %d %q, want 1013", code, reason)
	}
	rc.write(f[5000:])
	for {
		r := nextResult(t, results)
		if r.err == nil && len(r.msg) == size {
			break
		}
	}
	waitUsed(t, budget, 0)
	_ = c
}

// TestReadBudgetInflated: a compressed message of a few dozen bytes
// inflates to a whole ReadLimit, which the application holds while it
// handles the message; the inflated output counts in the budget from
// the time it is made to the connection's next read, in Read as in
// TryRead. Three clients whose messages are being handled hold three
// outputs of a budget of four: the fourth's buffer, when it grows to the
// limit, counts together with the one it is copied from and does not
// fit; that client is closed with 1013 and Err reports ErrReadsFull, and
// the bytes come back once the handlers read on.
func TestReadBudgetInflated(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	bomb := deflateBytes(t, make([]byte, 60_000), 9)
	if len(bomb) > 200 {
		t.Fatalf("60,000 zeros compress to %d B", len(bomb))
	}
	// What one inflated message counts: its buffer, grown to the limit
	// and a byte, rounded up to the allocator's size.
	const output = 73_728
	for _, mode := range []string{"Read", "TryRead"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			if mode == "TryRead" && runtime.GOOS != "linux" {
				t.Skip("the epoll watcher is Linux only")
			}
			budget := NewReadBudget(4 * output)
			results := make(chan readResult, 16)
			release := make(chan struct{})
			// handled hands a message over and holds it, as an
			// application waiting on its backend would.
			handled := func(r readResult) {
				results <- r
				if r.err == nil {
					<-release
				}
			}
			ts := newTestServer(t, Options{Compression: true, ReadLimit: limit, Reading: budget, PingInterval: -1}, func(c *Conn) {
				if mode == "Read" {
					for {
						typ, msg, err := c.Read(context.Background())
						handled(readResult{typ, msg, err})
						if err != nil {
							return
						}
					}
				}
				var serve func()
				serve = func() {
					for {
						typ, msg, err := c.TryRead()
						if err == ErrWouldBlock {
							if !c.NotifyReadable(serve) {
								handled(readResult{err: errors.New("NotifyReadable unsupported")})
							}
							return
						}
						handled(readResult{typ, msg, err})
						if err != nil {
							return
						}
					}
				}
				serve()
			})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			const ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
			compressed := frame(true, 0x40, opBinary, bomb, true)
			for i := range 3 {
				rc := dialRaw(t, ts.URL, ext)
				ts.nextConn(t)
				rc.write(compressed)
				if r := nextResult(t, results); r.err != nil || len(r.msg) != 60_000 {
					t.Fatalf("message %d: %d B, %v", i, len(r.msg), r.err)
				}
				if got, want := budget.Used(), int64(i+1)*output; got != want {
					t.Fatalf("%d inflated messages being handled: the budget counts %d B, want %d", i+1, got, want)
				}
			}
			over := dialRaw(t, ts.URL, ext)
			overConn := ts.nextConn(t)
			over.write(compressed)
			if code, reason := over.expectClose(); code != CloseTryAgainLater {
				t.Fatalf("a fourth inflated message: close %d %q, want 1013", code, reason)
			}
			if err := waitDone(t, overConn, 5*time.Second); !errors.Is(err, ErrReadsFull) {
				t.Fatalf("Err = %v, want ErrReadsFull", err)
			}
			if r := nextResult(t, results); !errors.Is(r.err, ErrReadsFull) {
				t.Fatalf("the fourth read = %v, want ErrReadsFull", r.err)
			}
			if got := budget.Used(); got != 3*output {
				t.Fatalf("after the refusal the budget counts %d B, want %d", got, 3*output)
			}
			close(release)
			waitUsed(t, budget, 0)
		})
	}
}
