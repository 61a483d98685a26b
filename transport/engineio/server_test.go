package engineio

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A sid this node does not know (another node's, behind a load balancer
// without sticky sessions) is refused at once on every path.
func TestUnknownSID(t *testing.T) {
	e := newEnv(t, Config{})
	want := errorBody(1, "Session ID unknown")
	for _, m := range []string{"GET", "POST"} {
		start := time.Now()
		r := e.do(t, m, "EIO=4&transport=polling&sid=nope", "4x")
		if r.status != 400 || r.body != want {
			t.Errorf("%s: %d %q", m, r.status, r.body)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v", m, d)
		}
	}
	_, resp, err := websocket.Dial(t.Context(), e.wsURL("EIO=4&transport=websocket&sid=nope"), nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("websocket: %v %+v", err, resp)
	}
}

func TestCloseReasons(t *testing.T) {
	t.Run("client close over polling", func(t *testing.T) {
		e := newEnv(t, Config{})
		sid := e.handshake(t)
		e.post(t, sid, "1")
		wantClose(t, e, ErrTransportClose)
		if e.srv.Len() != 0 {
			t.Fatalf("Len = %d", e.srv.Len())
		}
	})
	t.Run("ping timeout over polling", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.handshake(t)
		wantClose(t, e, ErrPingTimeout)
	})
	t.Run("ping timeout over websocket", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := e.dial(t, "EIO=4&transport=websocket")
		read(t, c)
		wantClose(t, e, ErrPingTimeout)
	})
	t.Run("no ping timeout while the client's pongs wait unread", func(t *testing.T) {
		// The handler holds the socket's reader on its first message, so
		// the pongs the client sends meanwhile stay in the socket: the
		// session must outlive several ping timeouts, then carry on.
		release, held := make(chan struct{}), make(chan struct{}, 1)
		var once sync.Once
		e := newEnv(t, Config{OnConnection: func(*Socket, *http.Request) Handler {
			return blockingHandler{release: release, held: held, once: &once}
		}})
		t.Cleanup(func() { once.Do(func() { close(release) }) })
		c := e.dial(t, "EIO=4&transport=websocket")
		read(t, c) // open
		write(t, c, websocket.MessageText, "4hold")
		// The pong is written once the handler holds the reader, before
		// the ping is read: it waits in the socket by the ping's deadline
		// however long this process takes to run (written after reading
		// the ping, it had to arrive within the 200 ms pong timeout, which
		// a loaded machine missed now and then). The server cannot tell
		// the difference: it reads the pong after the ping.
		select {
		case <-held:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler did not get 4hold")
		}
		write(t, c, websocket.MessageText, "3")
		if _, m := read(t, c); m != "2" {
			t.Fatalf("got %q, want a ping", m)
		}
		// Three ping timeouts: without the unread check the session ends
		// after the first.
		time.Sleep(3 * testPingTimeout)
		if n := e.srv.Len(); n != 1 {
			t.Fatalf("sessions = %d while the pong waited unread, want 1", n)
		}
		once.Do(func() { close(release) })
		write(t, c, websocket.MessageText, "4after")
		_, m := read(t, c)
		for m == "2" { // the next ping may come first on a slow machine
			write(t, c, websocket.MessageText, "3")
			_, m = read(t, c)
		}
		if m != "4after" {
			t.Fatalf("after the release got %q, want the echo of 4after", m)
		}
	})
	t.Run("parse error over websocket", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := e.dial(t, "EIO=4&transport=websocket")
		read(t, c)
		write(t, c, websocket.MessageText, "x")
		wantClose(t, e, ErrParse)
		if code := waitClosed(t, c, 2*time.Second); code != websocket.StatusProtocolError {
			t.Fatalf("close code %v", code)
		}
	})
	t.Run("client closes websocket", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := e.dial(t, "EIO=4&transport=websocket")
		read(t, c)
		c.Close(websocket.StatusNormalClosure, "")
		wantClose(t, e, ErrTransportClose)
	})
	t.Run("ping from the client", func(t *testing.T) {
		e := newEnv(t, Config{})
		sid := e.handshake(t)
		e.post(t, sid, "2")
		wantClose(t, e, ErrTransportError)
	})
}

// OnClose comes after the last OnMessage, once, even when the handler
// closes the socket from OnMessage.
func TestCloseFromHandler(t *testing.T) {
	e := newEnv(t, Config{})
	e.h.noEcho = true
	closer := &closingHandler{recorder: e.h}
	e.srv.cfg.OnConnection = func(*Socket, *http.Request) Handler { return closer }
	c := e.dial(t, "EIO=4&transport=websocket")
	read(t, c)
	write(t, c, websocket.MessageText, "4bye")
	wantClose(t, e, ErrForcedClose)
	if code := waitClosed(t, c, 3*time.Second); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %v", code)
	}
	select {
	case err := <-e.h.closed:
		t.Fatalf("second OnClose: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

type closingHandler struct{ *recorder }

func (h *closingHandler) OnMessage(s *Socket, data []byte, binary bool) {
	h.recorder.OnMessage(s, data, binary)
	s.Close()
}

func TestShutdownWithOpenSessions(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	sid := e.handshake(t)
	done := make(chan response, 1)
	go func() { done <- e.poll(t, sid) }()
	waitFor(t, func() bool {
		so := e.srv.Socket(sid)
		so.mu.Lock()
		defer so.mu.Unlock()
		return so.pstate() != nil && so.pstate().pollCh != nil
	})
	c := e.dial(t, "EIO=4&transport=websocket")
	read(t, c)
	errc := make(chan websocket.StatusCode, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		errc <- websocket.CloseStatus(err)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != 200 || r.body != "1" {
		t.Fatalf("pending poll: %d %q", r.status, r.body)
	}
	if code := <-errc; code != websocket.StatusGoingAway {
		t.Fatalf("websocket close %v", code)
	}
	for range 2 {
		wantClose(t, e, ErrServerShutdown)
	}
	if r := e.do(t, "GET", "EIO=4&transport=polling", ""); r.status != 503 || !strings.Contains(r.body, "shutting down") {
		t.Fatalf("after shutdown: %d %q", r.status, r.body)
	}
}

// blockingHandler holds its first message until release is closed, then
// echoes every message.
type blockingHandler struct {
	release chan struct{}
	held    chan struct{} // gets a value when "hold" begins (nil: none)
	once    *sync.Once
}

func (h blockingHandler) OnMessage(s *Socket, data []byte, binary bool) {
	if string(data) == "hold" {
		if h.held != nil {
			h.held <- struct{}{}
		}
		<-h.release
		return
	}
	_ = s.SendText(data)
}

func (blockingHandler) OnClose(*Socket, error) {}

// A client that opens a second WebSocket with the sid as soon as its
// first is open (the protocol suite's "ignores WebSocket connection with
// same sid after upgrade") gets the second closed, and upgrades on the
// first, even when the server has not yet taken the first as the probe
// when the second comes: here the first's handshake is held between its
// answer and the rest of upgradeRequest until the second is closed.
// Before, the second became the probe and the first was closed (the
// suite timed out waiting for the second's close on a loaded machine).
func TestUpgradeSecondWebSocketDuringFirstHandshake(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	entered, proceed := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	e.srv.probeUpgraded = func(*Socket) {
		if calls.Add(1) == 1 {
			close(entered)
			<-proceed
		}
	}
	sid := e.handshake(t)
	c := e.dial(t, "EIO=4&transport=websocket&sid="+sid)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		close(proceed)
		t.Fatal("the first WebSocket's upgrade did not run")
	}
	c2 := e.dial(t, "EIO=4&transport=websocket&sid="+sid)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _, err := c2.Read(ctx)
	timedOut := ctx.Err() != nil
	cancel()
	close(proceed)
	if err == nil || timedOut {
		t.Fatalf("the second WebSocket was not closed: %v", err)
	}
	write(t, c, websocket.MessageText, "2probe")
	if _, data := read(t, c); data != "3probe" {
		t.Fatalf("probe answered %q", data)
	}
	write(t, c, websocket.MessageText, "5")
	write(t, c, websocket.MessageText, "4hello")
	if _, data := read(t, c); data != "4hello" {
		t.Fatalf("got %q, want the echo of 4hello", data)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d probes upgraded, want 1", n)
	}
}
