package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// backgroundFrames are the functions of the package's background
// goroutines, as they appear in a stack dump.
var backgroundFrames = []string{
	"transport.(*poller).run",
	"transport.(*waitPoller).run",
	"transport.(*flushShard).run",
	"transport.(*heartbeatClock).fire",
	"transport.runCallbacks",
}

// backgroundStacks returns the stacks of running background goroutines.
func backgroundStacks() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range backgroundFrames {
			if strings.Contains(g, f) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// TestUpgraderCloseStopsBackground starts every kind of background
// goroutine through an Upgrader (the read poller with NotifyReadable,
// the flush workers with Send, a wait poller with a write the peer does
// not read, heartbeat callbacks), closes the connections and then the
// Upgrader: Close returns once every one of them has ended.
func TestUpgraderCloseStopsBackground(t *testing.T) {
	// Not parallel: no other test's connections may hold the goroutines.
	u := NewUpgrader(Options{PingInterval: time.Second, WriteTimeout: 5 * time.Second, SendQueueBytes: 32 << 20})
	var mu sync.Mutex
	var conns []*Conn
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}))
	defer srv.Close()

	// One at a time, so that conns[i] is clients[i]'s.
	var clients []*rawClient
	for i := range 3 {
		clients = append(clients, dialRaw(t, srv.URL, ""))
		checkFor(t, 5*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(conns) <= i {
				return errors.New("not upgraded yet")
			}
			return nil
		})
	}
	mu.Lock()
	reader, sender, blocked := conns[0], conns[1], conns[2]
	mu.Unlock()

	// The read poller: a callback when the client writes.
	readable := make(chan struct{}, 1)
	if _, _, err := reader.TryRead(); err != ErrWouldBlock {
		t.Fatalf("TryRead: %v", err)
	}
	if !reader.NotifyReadable(func() { readable <- struct{}{} }) {
		t.Skip("no poller on this platform")
	}
	clients[0].write(mframe(true, opText, []byte("hi")))
	select {
	case <-readable:
	case <-time.After(5 * time.Second):
		t.Fatal("no readable callback")
	}
	// A flush worker: a message the client reads.
	if err := sender.WriteText([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	for f := clients[1].mustRead(); f.op != opText; f = clients[1].mustRead() {
	}
	// A wait poller: writes the client does not read, until one blocks.
	_ = clients[2].nc.(*net.TCPConn).SetReadBuffer(4096)
	_ = blocked.raw().SetWriteBuffer(4096)
	big := NewPrepared(Binary, make([]byte, 256<<10), 0, 0)
	for range 64 {
		if err := blocked.Send(big); err != nil {
			t.Fatal(err)
		}
	}
	waitBlocked(t, blocked)
	if len(backgroundStacks()) == 0 {
		t.Fatal("no background goroutine while connections are served")
	}

	for _, c := range []*Conn{reader, sender, blocked} {
		c.Terminate(nil)
		<-c.Done()
	}
	for _, rc := range clients {
		rc.nc.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.Close(ctx); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(backgroundStacks(), "\n\n"))
	}
	if n := background.running.Load(); n != 0 {
		t.Fatalf("%d background goroutines counted after Close", n)
	}
	// A goroutine that has counted itself out may still be returning.
	checkFor(t, time.Second, func() error {
		if s := backgroundStacks(); len(s) > 0 {
			return errors.New(strings.Join(s, "\n\n"))
		}
		return nil
	})
	if err := u.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCallbackRunnerReused: a callback that comes while a runner is idle
// runs on that runner (which keeps the stack it grew), not on a new
// goroutine; runners end once idle.
func TestCallbackRunnerReused(t *testing.T) {
	// Not parallel: another test's idle runner could take the callback.
	// A runner left by an earlier test ends within callbackIdle.
	checkFor(t, 5*time.Second, func() error {
		if s := backgroundStacks(); len(s) > 0 {
			return fmt.Errorf("%d background goroutines left", len(s))
		}
		return nil
	})
	goid := func() string {
		buf := make([]byte, 64)
		return strings.Fields(string(buf[:runtime.Stack(buf, false)]))[1]
	}
	ran := make(chan string, 1)
	runCallback(func() { ran <- goid() })
	first := <-ran
	// The runner is idle once it takes a callback handed to an idle one.
	second := make(chan string, 1)
	checkFor(t, 5*time.Second, func() error {
		select {
		case callbacks <- func() { second <- goid() }:
			return nil
		default:
			return errors.New("no idle runner")
		}
	})
	if got := <-second; got != first {
		t.Errorf("second callback ran on goroutine %s, the first on %s: want the same runner", got, first)
	}
	checkFor(t, 5*time.Second, func() error {
		if s := backgroundStacks(); len(s) > 0 {
			return fmt.Errorf("runner still running after %v idle:\n%s", callbackIdle, strings.Join(s, "\n\n"))
		}
		return nil
	})
}
