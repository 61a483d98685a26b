package transport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// loopbackConns connects n TCP clients to n server connections made
// directly (no HTTP upgrade): the write path alone.
func loopbackConns(tb testing.TB, n int, opts Options) ([]*Conn, []net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	u := &Upgrader{opts: opts.withDefaults()} // no hold: nothing here waits for the background goroutines
	conns := make([]*Conn, 0, n)
	clients := make([]net.Conn, 0, n)
	tb.Cleanup(func() {
		for _, c := range conns {
			c.Terminate(nil)
			<-c.Done()
		}
		for _, nc := range clients {
			nc.Close()
		}
	})
	for range n {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		clients = append(clients, nc)
		sc, err := ln.Accept()
		if err != nil {
			tb.Fatal(err)
		}
		c := newConn(sc, nil, &u.opts, negotiated{})
		if c.fd < 0 {
			tb.Fatal("no raw socket")
		}
		c.start()
		conns = append(conns, c)
	}
	return conns, clients
}

// queueForTurn queues m on c and takes c's write side, without giving it
// a turn on a flush worker: the test runs the turn.
func queueForTurn(tb testing.TB, c *Conn, m *Prepared) {
	c.mu.Lock()
	c.sendQ = append(c.sendQ, m)
	claimed := c.claimLocked()
	c.mu.Unlock()
	if !claimed {
		tb.Fatal("write side already owned")
	}
}

// readTexts reads n text frames from nc and checks that frame k is
// want(k).
func readTexts(nc net.Conn, n int, want func(k int) string) error {
	rc := &rawClient{nc: nc, br: bufio.NewReader(nc)}
	for k := range n {
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := rc.readFrame()
		if err != nil {
			return fmt.Errorf("frame %d: %w", k, err)
		}
		if got := string(f.payload); f.op != opText || got != want(k) {
			return fmt.Errorf("frame %d: op %d %q, want %q", k, f.op, got, want(k))
		}
	}
	return nil
}

// connsAndRing connects n clients (loopbackConns) and makes a ring for a
// test that runs the turns itself; the test closes the ring.
func connsAndRing(t *testing.T, n int) ([]*Conn, []net.Conn, *uring) {
	t.Helper()
	requireURing(t)
	conns, clients := loopbackConns(t, n, Options{PingInterval: -1})
	r, err := newURing(uringEntries)
	if err != nil {
		t.Fatal(err)
	}
	return conns, clients, r
}

func requireURing(tb testing.TB) {
	tb.Helper()
	if !uringUsable() {
		tb.Skip("io_uring is off (HERALD_IO_URING) or refused by the kernel here")
	}
}

// TestURingWritesTurns: flush workers write the turns of many
// connections through io_uring, more than one submission's worth, each
// connection getting its own frames in order, while one peer that does
// not read has its writes wait (EAGAIN, then partial writes) without
// holding up the others.
func TestURingWritesTurns(t *testing.T) {
	requireURing(t)
	const n, rounds = uringEntries + 44, 20
	conns, clients := loopbackConns(t, n, Options{PingInterval: -1})
	_ = clients[0].(*net.TCPConn).SetReadBuffer(16 << 10)
	_ = conns[0].raw().SetWriteBuffer(32 << 10)
	big := string(text(64 << 10))
	msg := func(i, k int) string {
		if i == 0 {
			return fmt.Sprintf("%d:%d:%s", i, k, big)
		}
		return fmt.Sprintf("%d:%d", i, k)
	}
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		go func() {
			errs <- readTexts(clients[i], rounds, func(k int) string { return msg(i, k) })
		}()
	}
	// A round at a time, each written before the next is sent: turns of
	// one frame, which go through the ring.
	before := uringWrites.Load()
	for k := range rounds {
		for i, c := range conns {
			if err := c.Send(NewPrepared(Text, []byte(msg(i, k)), 0, 0)); err != nil {
				t.Fatalf("Send %d/%d: %v", i, k, err)
			}
		}
		for i, c := range conns[1:] {
			checkFor(t, 5*time.Second, func() error {
				if frames, _, _ := c.Stats(); frames != uint64(k+1) {
					return fmt.Errorf("round %d: conn %d: %d frames out", k, i+1, frames)
				}
				return nil
			})
		}
	}
	for i := 1; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Every fast peer has everything while the slow one still waits.
	waitBlocked(t, conns[0])
	if err := readTexts(clients[0], rounds, func(k int) string { return msg(0, k) }); err != nil {
		t.Fatalf("slow peer: %v", err)
	}
	if got := uringWrites.Load() - before; got < (n-1)*rounds/2 {
		t.Errorf("%d writes through io_uring, want most of the %d turns", got, (n-1)*rounds)
	}
	for i, c := range conns {
		checkFor(t, 5*time.Second, func() error {
			if frames, _, _ := c.Stats(); frames != rounds {
				return fmt.Errorf("conn %d: %d frames out, want %d", i, frames, rounds)
			}
			return nil
		})
	}
}

// TestURingLongTurns: after a group whose turns carried several frames
// each, turns are taken and written one at a time, not through the
// ring, until a group of single-frame turns; every frame arrives in
// order.
func TestURingLongTurns(t *testing.T) {
	const n = 8
	conns, clients, r := connsAndRing(t, n)
	defer r.close()
	var sc turnScratch
	sent := make([]int, n)
	// round queues frames frames on every connection and runs their
	// turns, reporting how many writes went through the ring.
	round := func(frames int) uint64 {
		turn := make([]*Conn, n)
		for i, c := range conns {
			for k := range frames {
				m := NewPrepared(Text, fmt.Appendf(nil, "%d:%d", i, sent[i]), 0, 0)
				sent[i]++
				if k < frames-1 {
					c.mu.Lock()
					c.sendQ = append(c.sendQ, m)
					c.mu.Unlock()
					continue
				}
				queueForTurn(t, c, m)
			}
			turn[i] = c
		}
		before := uringWrites.Load()
		sc.writeTurns(r, turn)
		return uringWrites.Load() - before
	}
	for _, step := range []struct {
		frames   int
		viaRing  uint64
		thenLong bool
	}{
		{3, n, true}, // nothing seen yet: through the ring
		{3, 0, true}, // after long turns: one at a time
		{1, 0, false},
		{1, n, false}, // after single-frame turns: the ring again
	} {
		if got := round(step.frames); got != step.viaRing {
			t.Errorf("%d frames per turn: %d writes through the ring, want %d", step.frames, got, step.viaRing)
		}
		if sc.ring.long != step.thenLong {
			t.Errorf("%d frames per turn: long = %v, want %v", step.frames, sc.ring.long, step.thenLong)
		}
	}
	for i, nc := range clients {
		if err := readTexts(nc, sent[i], func(k int) string { return fmt.Sprintf("%d:%d", i, k) }); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
	}
}

// TestURingBrokenFallsBack: when the kernel refuses a submission for
// good, the turns are written one by one and the shard stops using the
// ring.
func TestURingBrokenFallsBack(t *testing.T) {
	const n = 8
	conns, clients, r := connsAndRing(t, n)
	r.close() // io_uring_enter now fails with EBADF
	turn := make([]*Conn, n)
	for i, c := range conns {
		queueForTurn(t, c, NewPrepared(Text, fmt.Appendf(nil, "turn %d", i), 0, 0))
		turn[i] = c
	}
	var sc turnScratch
	sc.writeTurns(r, turn)
	if !r.broken {
		t.Fatal("ring not marked broken")
	}
	for i, nc := range clients {
		if err := readTexts(nc, 1, func(int) string { return fmt.Sprintf("turn %d", i) }); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
	}
	for i, c := range conns {
		c.mu.Lock()
		owned := c.owned
		c.mu.Unlock()
		if owned {
			t.Errorf("conn %d: write side still owned after its turn", i)
		}
	}
	sr := shardRing{r: r}
	if sr.get() != nil || !sr.failed {
		t.Error("a shard keeps using a broken ring")
	}
}

// TestURingProbe: this kernel's io_uring completes a write to a full
// non-blocking socket at once with EAGAIN, which flush workers rely on.
func TestURingProbe(t *testing.T) {
	r, err := newURing(2)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	defer r.close()
	if !uringProbe(r) {
		t.Fatal("io_uring works here but a write to a full socket did not complete with EAGAIN")
	}
}

// BenchmarkTurnWrites compares one writev per turn with one io_uring
// submission for a group of turns: 256 connections, one 110-byte frame
// each per turn, over loopback. ns/write is the writer's time per
// connection, which on loopback includes the receiving side's TCP work.
func BenchmarkTurnWrites(b *testing.B) {
	const n = uringEntries
	for _, mode := range []string{"writev", "io_uring"} {
		b.Run(mode, func(b *testing.B) {
			var r *uring
			if mode == "io_uring" {
				requireURing(b)
				var err error
				if r, err = newURing(uringEntries); err != nil {
					b.Fatal(err)
				}
				defer r.close()
			}
			conns, clients := loopbackConns(b, n, Options{PingInterval: -1})
			for _, nc := range clients {
				go func() { _, _ = io.Copy(io.Discard, nc) }()
			}
			p := NewPrepared(Text, text(108), 0, 0)
			turn := make([]*Conn, n)
			var sc turnScratch
			for b.Loop() {
				for i, c := range conns {
					queueForTurn(b, c, p)
					turn[i] = c
				}
				if r != nil {
					sc.writeTurns(r, turn)
					continue
				}
				for _, c := range turn {
					c.flushTurn(&sc)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/write")
		})
	}
}

// TestURingFullSocket: a turn that finds its socket full (the write
// completes with EAGAIN) hands its frames to the goroutine that waits
// for the peer, which writes them once the peer reads.
func TestURingFullSocket(t *testing.T) {
	requireURing(t)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fileConn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		nc, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return nc
	}
	server, client := fileConn(fds[0]), fileConn(fds[1])
	defer client.Close()
	c := newConn(server, nil, testOptions(Options{PingInterval: -1}), negotiated{})
	if c.fd < 0 {
		t.Fatal("no raw socket")
	}
	defer func() { c.Terminate(nil); <-c.Done() }()
	// Fill the socket with whole one-byte frames: a Unix stream socket
	// takes a write this small whole or not at all.
	filler := appendFrame(nil, opText, true, []byte("x"))
	fills := 0
	for {
		if _, err := syscall.Write(int(c.fd), filler); err != nil {
			if err != syscall.EAGAIN {
				t.Fatal(err)
			}
			break
		}
		fills++
	}
	r, err := newURing(uringEntries)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	queueForTurn(t, c, NewPrepared(Text, []byte("after the fill"), 0, 0))
	var sc turnScratch
	before := uringWrites.Load()
	sc.writeTurns(r, []*Conn{c})
	if uringWrites.Load() == before {
		t.Fatal("the turn did not go through the ring")
	}
	c.mu.Lock()
	blocked := c.blocked
	c.mu.Unlock()
	if !blocked {
		t.Fatal("the turn's frame was not handed to the waiting goroutine")
	}
	err = readTexts(client, fills+1, func(k int) string {
		if k < fills {
			return "x"
		}
		return "after the fill"
	})
	if err != nil {
		t.Fatal(err)
	}
}
