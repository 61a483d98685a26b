package engineio

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/transport"
)

func TestMaxPayloadPolling(t *testing.T) {
	e := newEnv(t, Config{MaxPayload: 100})
	sid := e.handshake(t)
	at := "4" + strings.Repeat("a", 99)
	if r := e.post(t, sid, at); r.status != 200 {
		t.Fatalf("at the limit: %d %q", r.status, r.body)
	}
	if r := e.poll(t, sid); r.body != at {
		t.Fatalf("echo %q", r.body)
	}
	if r := e.post(t, sid, at+"a"); r.status != 413 {
		t.Fatalf("over the limit: %d %q", r.status, r.body)
	}
	wantClose(t, e, ErrPayloadTooLarge)
	if r := e.poll(t, sid); r.status != 400 {
		t.Fatalf("poll after 413: %d", r.status)
	}

	// Without a Content-Length the body is cut at the limit.
	sid = e.handshake(t)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(at + "aaaa"))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.url+"?EIO=4&transport=polling&sid="+sid, pr)
	if r := e.send(t, req); r.status != 413 {
		t.Fatalf("chunked over the limit: %d %q", r.status, r.body)
	}
	wantClose(t, e, ErrPayloadTooLarge)
}

func TestMaxPayloadWebSocket(t *testing.T) {
	// A ping due every millisecond races the close of the oversized
	// frame: a ping sent on the closing connection must leave the reason
	// to its reader (it made it ErrBufferFull in about one run in five).
	e := newEnv(t, Config{MaxPayload: 100, PingInterval: time.Millisecond, PingTimeout: time.Hour})
	c := e.dial(t, "EIO=4&transport=websocket")
	read(t, c)
	write(t, c, websocket.MessageText, "4"+strings.Repeat("a", 100))
	if code := waitClosed(t, c, 3*time.Second); code != websocket.StatusMessageTooBig {
		t.Fatalf("close %v", code)
	}
	wantClose(t, e, ErrPayloadTooLarge)
}

func TestBufferBoundPolling(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBytes: 1000, PingInterval: time.Minute, PingTimeout: time.Minute})
	sid := e.handshake(t)
	so := e.srv.Socket(sid)
	msg := []byte(strings.Repeat("x", 199)) // 201 bytes in the payload
	var err error
	n := 0
	for ; n < 10 && err == nil; n++ {
		if b, q := so.Buffered(), so.Queued(); b != n*201 || q != n {
			t.Fatalf("after %d sends: Buffered %d, Queued %d", n, b, q)
		}
		err = so.SendText(msg)
	}
	if !errors.Is(err, ErrBufferFull) || n != 5 {
		t.Fatalf("after %d sends: %v", n, err)
	}
	wantClose(t, e, ErrBufferFull)
	if err := so.SendText(msg); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if r := e.poll(t, sid); r.status != 400 {
		t.Fatalf("poll: %d %q", r.status, r.body)
	}
	if got := e.srv.Stats().Closed[ErrBufferFull.Error()]; got != 1 {
		t.Fatalf("Stats.Closed[buffer full] = %d", got)
	}
}

// The polling buffers of all sessions count in one budget with the
// WebSockets' queues (WebSocket.Queues, of WebSocket.MaxQueuedBytes):
// sessions that never poll hold no socket, so each holding its own
// MaxBufferedBytes would bound nothing. A message that finds the budget
// at its limit closes the session holding the most instead of its own
// when that one holds more than its own would (its client is the one not
// reading), else its own, with ErrBufferFull; a poll or a close gives
// the bytes back.
func TestBufferBoundPollingNode(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBytes: 1000, PingInterval: time.Minute, PingTimeout: time.Minute,
		WebSocket: transport.Options{MaxQueuedBytes: 1800}})
	msg := []byte(strings.Repeat("x", 199)) // 201 bytes in the payload
	var socks []*Socket
	var sids []string
	for range 3 {
		sid := e.handshake(t)
		sids = append(sids, sid)
		socks = append(socks, e.srv.Socket(sid))
	}
	for i, so := range socks[:2] {
		for range 4 - i {
			if err := so.SendText(msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := e.srv.QueuedBytes(); got != 7*201 {
		t.Fatalf("QueuedBytes %d with 7 messages buffered, want %d", got, 7*201)
	}
	// The third session's third message finds 1809 bytes counted: the
	// first session, with 804, is closed for it.
	c := socks[2]
	for n := range 3 {
		if err := c.SendText(msg); err != nil {
			t.Fatalf("third session's message %d: %v, want the first session closed instead", n+1, err)
		}
	}
	wantClose(t, e, ErrBufferFull)
	if r := e.poll(t, sids[0]); r.status != 400 {
		t.Fatalf("poll of the evicted session: %d %q, want 400", r.status, r.body)
	}
	if got := e.srv.QueuedBytes(); got != 6*201 {
		t.Fatalf("QueuedBytes %d after the first session closed, want %d", got, 6*201)
	}
	// With the budget full again (another holder), the third session
	// holds the most: its own message closes it.
	e.srv.queues().Take(1800 - 6*201)
	if err := c.SendText(msg); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("third session with the budget full: %v, want ErrBufferFull", err)
	}
	wantClose(t, e, ErrBufferFull)
	e.srv.queues().Give(1800 - 6*201)
	if got := e.srv.QueuedBytes(); got != 3*201 {
		t.Fatalf("QueuedBytes %d after the third session closed, want %d", got, 3*201)
	}
	if r := e.poll(t, sids[1]); r.status != 200 || strings.Count(r.body, "\x1e") != 2 {
		t.Fatalf("poll: %d %q", r.status, r.body)
	}
	if got := e.srv.QueuedBytes(); got != 0 {
		t.Fatalf("QueuedBytes %d after a poll took 3 messages, want 0", got)
	}
	socks[1].Close()
	if r := e.poll(t, sids[1]); r.status != 200 {
		t.Fatalf("poll of the closing session: %d %q", r.status, r.body)
	}
	wantClose(t, e, ErrForcedClose)
	if got := e.srv.QueuedBytes(); got != 0 {
		t.Fatalf("QueuedBytes %d with every session closed, want 0", got)
	}
}

func TestBufferBoundWebSocket(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBytes: 256 << 10, PingInterval: time.Minute, PingTimeout: time.Minute})
	c := e.dial(t, "EIO=4&transport=websocket")
	read(t, c)
	so := <-e.h.sockets
	// The client reads nothing: once the kernel's buffers are full the
	// send queue grows to the bound.
	m := e.srv.NewMessage([]byte(strings.Repeat("y", 64<<10)), false)
	var err error
	maxBuffered := 0
	for i := 0; i < 2000 && err == nil; i++ {
		err = so.Send(m)
		maxBuffered = max(maxBuffered, so.Buffered())
	}
	if maxBuffered == 0 || maxBuffered > 256<<10 {
		t.Fatalf("Buffered peaked at %d", maxBuffered)
	}
	if !errors.Is(err, ErrBufferFull) && !errors.Is(err, ErrClosed) {
		t.Fatalf("send: %v", err)
	}
	wantClose(t, e, ErrBufferFull)
}

// Messages the app sends while a polling session upgrades wait in the
// polling buffer and go over the WebSocket in order once it completes.
func TestUpgradeCarriesBuffer(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	sid := e.handshake(t)
	so := e.srv.Socket(sid)
	if !strings.HasPrefix(so.RemoteAddr(), "127.0.0.1:") {
		t.Fatalf("RemoteAddr %q on polling", so.RemoteAddr())
	}
	pending := make(chan response, 1)
	go func() { pending <- e.poll(t, sid) }()
	waitFor(t, func() bool {
		so.mu.Lock()
		defer so.mu.Unlock()
		return so.pstate().pollCh != nil
	})
	c := e.dial(t, "EIO=4&transport=websocket&sid="+sid)
	write(t, c, websocket.MessageText, "2probe")
	if _, data := read(t, c); data != "3probe" {
		t.Fatalf("probe answer %q", data)
	}
	if r := <-pending; r.body != "6" {
		t.Fatalf("pending poll got %q, want noop", r.body)
	}
	for _, m := range []string{"one", "two"} {
		if err := so.SendText([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := so.SendBinary([]byte{9, 8}); err != nil {
		t.Fatal(err)
	}
	if so.Transport() != "polling" {
		t.Fatal("upgraded before 5")
	}
	write(t, c, websocket.MessageText, "5")
	for _, want := range []string{"4one", "4two", "\x09\x08"} {
		if _, data := read(t, c); data != want {
			t.Fatalf("got %q, want %q", data, want)
		}
	}
	if so.Transport() != "websocket" || e.srv.Stats().Upgrades != 1 || e.srv.Stats().Polling != 0 {
		t.Fatalf("transport %s, stats %+v", so.Transport(), e.srv.Stats())
	}
	if !strings.HasPrefix(so.RemoteAddr(), "127.0.0.1:") {
		t.Fatalf("RemoteAddr %q on websocket", so.RemoteAddr())
	}
	write(t, c, websocket.MessageText, "4after")
	if _, data := read(t, c); data != "4after" {
		t.Fatalf("echo %q", data)
	}
}

func TestUpgradeAbandoned(t *testing.T) {
	for _, tt := range []struct {
		name  string
		probe func(t *testing.T, c *websocket.Conn)
	}{
		{"timeout", func(t *testing.T, c *websocket.Conn) {
			write(t, c, websocket.MessageText, "2probe")
			read(t, c)
		}},
		{"not a probe", func(t *testing.T, c *websocket.Conn) { write(t, c, websocket.MessageText, "4x") }},
		{"upgrade without probe", func(t *testing.T, c *websocket.Conn) { write(t, c, websocket.MessageText, "5") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{UpgradeTimeout: 200 * time.Millisecond, PingInterval: time.Minute, PingTimeout: time.Minute})
			sid := e.handshake(t)
			c := e.dial(t, "EIO=4&transport=websocket&sid="+sid)
			tt.probe(t, c)
			waitClosed(t, c, 3*time.Second)
			// The session goes on over polling.
			if r := e.post(t, sid, "4still"); r.status != 200 {
				t.Fatalf("post: %d %q", r.status, r.body)
			}
			if r := e.poll(t, sid); r.body != "4still" {
				t.Fatalf("poll: %d %q", r.status, r.body)
			}
		})
	}
}

func TestTransportRules(t *testing.T) {
	t.Run("overlapping posts", func(t *testing.T) {
		e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		sid := e.handshake(t)
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest("POST", e.url+"?EIO=4&transport=polling&sid="+sid, pr)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
		_, _ = pw.Write([]byte("4a"))
		so := e.srv.Socket(sid)
		waitFor(t, func() bool {
			so.mu.Lock()
			defer so.mu.Unlock()
			return so.pstate().posting
		})
		if r := e.post(t, sid, "4b"); r.status != 400 || r.body != errorBody(3, "Bad request") {
			t.Fatalf("second post: %d %q", r.status, r.body)
		}
		wantClose(t, e, ErrTransportError)
	})
	t.Run("binary body", func(t *testing.T) {
		e := newEnv(t, Config{})
		sid := e.handshake(t)
		req, _ := http.NewRequest("POST", e.url+"?EIO=4&transport=polling&sid="+sid, strings.NewReader("\x01\x02"))
		req.Header.Set("Content-Type", "application/octet-stream")
		if r := e.send(t, req); r.status != 400 {
			t.Fatalf("%d %q", r.status, r.body)
		}
		wantClose(t, e, ErrTransportError)
	})
	t.Run("abandoned poll", func(t *testing.T) {
		e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		sid := e.handshake(t)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"?EIO=4&transport=polling&sid="+sid, nil)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
		so := e.srv.Socket(sid)
		waitFor(t, func() bool {
			so.mu.Lock()
			defer so.mu.Unlock()
			return so.pstate().pollCh != nil
		})
		cancel()
		wantClose(t, e, ErrTransportError)
	})
	t.Run("polling request on a websocket session", func(t *testing.T) {
		// A session opened on WebSocket is not in the sid map (its client
		// never sends the sid again): a request that carries it is
		// answered as for any unknown sid, where the reference server
		// answers {"code":3,"message":"Bad request"}; 400 either way.
		// The session itself goes on (a heartbeat of minutes: the
		// WebSocket client answers no ping, and under load these requests
		// may take longer than the suite's 500 ms).
		e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		c := e.dial(t, "EIO=4&transport=websocket")
		_, data := read(t, c)
		var h struct{ SID string }
		if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "0")), &h); err != nil || h.SID == "" {
			t.Fatalf("handshake %q: %v", data, err)
		}
		sid := h.SID
		for _, m := range []string{"GET", "POST"} {
			if r := e.do(t, m, "EIO=4&transport=polling&sid="+sid, "4x"); r.status != 400 || r.body != errorBody(1, "Session ID unknown") {
				t.Fatalf("%s: %d %q", m, r.status, r.body)
			}
		}
		if _, resp, err := websocket.Dial(context.Background(), e.wsURL("EIO=4&transport=websocket&sid="+sid), nil); err == nil || resp == nil || resp.StatusCode != 400 {
			t.Fatalf("a second WebSocket with the sid: %v", err)
		}
		if e.srv.Len() != 1 {
			t.Fatalf("%d sessions, want 1", e.srv.Len())
		}
	})
	t.Run("polling request on an upgraded session", func(t *testing.T) {
		e := newEnv(t, Config{})
		sid := e.handshake(t)
		c := e.dial(t, "EIO=4&transport=websocket&sid="+sid)
		write(t, c, websocket.MessageText, "2probe")
		if _, data := read(t, c); data != "3probe" {
			t.Fatalf("probe answered %q", data)
		}
		write(t, c, websocket.MessageText, "5")
		waitFor(t, func() bool { return e.srv.Socket(sid).Transport() == "websocket" })
		if r := e.do(t, "POST", "EIO=4&transport=polling&sid="+sid, "4x"); r.status != 400 || r.body != errorBody(3, "Bad request") {
			t.Fatalf("POST: %d %q", r.status, r.body)
		}
	})
}

func TestCORS(t *testing.T) {
	tests := []struct {
		name, origin string
		cors         CORS
		want         string // Access-Control-Allow-Origin
		creds        bool
	}{
		{"none", "https://a.example", CORS{}, "", false},
		{"any", "https://a.example", CORS{Origins: []string{"*"}}, "*", false},
		{"listed", "https://a.example", CORS{Origins: []string{"https://a.example"}}, "https://a.example", false},
		{"not listed", "https://b.example", CORS{Origins: []string{"https://a.example"}}, "", false},
		{"credentials", "https://a.example", CORS{Origins: []string{"*"}, Credentials: true}, "https://a.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{CORS: tt.cors})
			req, _ := http.NewRequest("GET", e.url+"?EIO=4&transport=polling", nil)
			req.Header.Set("Origin", tt.origin)
			r := e.send(t, req)
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Fatalf("GET: Allow-Origin %q, want %q", got, tt.want)
			}
			if got := r.header.Get("Access-Control-Allow-Credentials") == "true"; got != tt.creds {
				t.Fatalf("GET: Allow-Credentials %v", got)
			}
			req, _ = http.NewRequest("OPTIONS", e.url+"?EIO=4&transport=polling", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
			r = e.send(t, req)
			if len(tt.cors.Origins) == 0 {
				if r.status != 400 { // a handshake must be a GET
					t.Fatalf("OPTIONS without CORS: %d", r.status)
				}
				return
			}
			if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != tt.want {
				t.Fatalf("OPTIONS: %d %v", r.status, r.header)
			}
			if tt.want != "" && (!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
				r.header.Get("Access-Control-Allow-Headers") != "content-type") {
				t.Fatalf("OPTIONS headers: %v", r.header)
			}
		})
	}
}

func TestAllowRequestAndCookie(t *testing.T) {
	refuse := true
	e := newEnv(t, Config{Cookie: "io", AllowRequest: func(*http.Request) error {
		if refuse {
			return errors.New("too many sessions")
		}
		return nil
	}})
	if r := e.do(t, "GET", "EIO=4&transport=polling", ""); r.status != 403 || r.body != errorBody(4, "too many sessions") {
		t.Fatalf("refused polling: %d %q", r.status, r.body)
	}
	_, resp, err := websocket.Dial(t.Context(), e.wsURL("EIO=4&transport=websocket"), nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("refused websocket: %v %+v", err, resp)
	}
	refuse = false
	r := e.do(t, "GET", "EIO=4&transport=polling", "")
	sid := checkHandshake(t, r.body, []string{"websocket"})
	if c := r.header.Get("Set-Cookie"); !strings.HasPrefix(c, "io="+sid+";") || !strings.Contains(c, "HttpOnly") {
		t.Fatalf("polling Set-Cookie %q", c)
	}
	_, resp, err = websocket.Dial(t.Context(), e.wsURL("EIO=4&transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "io=") {
		t.Fatalf("websocket Set-Cookie %q", c)
	}
}

// MaxPolling bounds the polling sessions, counting each handshake from
// before AllowRequest: a handshake AllowRequest refuses gives its place
// back, one over the bound gets PollingFull's error, and WebSockets do
// not count.
func TestMaxPolling(t *testing.T) {
	var full atomic.Int32
	e := newEnv(t, noHeartbeat)
	e.srv.cfg.MaxPolling = 2
	e.srv.cfg.AllowRequest = func(r *http.Request) error {
		if n := e.srv.Polling(); n < 1 || n > 2 {
			t.Errorf("Polling = %d in AllowRequest, want this handshake counted", n)
		}
		if r.Header.Get("X-Refuse") != "" {
			return errors.New("refused")
		}
		return nil
	}
	req, _ := http.NewRequest("GET", e.url+"?EIO=4&transport=polling", nil)
	req.Header.Set("X-Refuse", "1")
	if r := e.send(t, req); r.status != 403 || r.body != errorBody(4, "refused") {
		t.Fatalf("refused: %d %q", r.status, r.body)
	}
	if n := e.srv.Polling(); n != 0 {
		t.Fatalf("Polling = %d after a refused handshake, want 0", n)
	}
	sids := []string{e.handshake(t), e.handshake(t)}
	e.dial(t, "EIO=4&transport=websocket")
	if r := e.do(t, "GET", "EIO=4&transport=polling", ""); r.status != 403 || r.body != errorBody(4, ErrPollingFull.Error()) {
		t.Fatalf("over the bound: %d %q", r.status, r.body)
	}
	e.srv.cfg.PollingFull = func(*http.Request) error { full.Add(1); return errors.New("full") }
	if r := e.do(t, "GET", "EIO=4&transport=polling", ""); r.status != 403 || r.body != errorBody(4, "full") || full.Load() != 1 {
		t.Fatalf("over the bound with PollingFull: %d %q (called %d times)", r.status, r.body, full.Load())
	}
	e.post(t, sids[0], "1")
	waitFor(t, func() bool { return e.srv.Polling() == 1 })
	e.handshake(t)
	if n := e.srv.Polling(); n != 2 {
		t.Fatalf("Polling = %d, want 2", n)
	}
}

func TestServerClose(t *testing.T) {
	t.Run("polling", func(t *testing.T) {
		e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		sid := e.handshake(t)
		so := e.srv.Socket(sid)
		_ = so.SendText([]byte("last"))
		so.Close()
		if err := so.SendText([]byte("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("send while closing: %v", err)
		}
		if r := e.poll(t, sid); r.body != "4last\x1e1" {
			t.Fatalf("poll: %d %q", r.status, r.body)
		}
		wantClose(t, e, ErrForcedClose)
		<-so.Done()
		if r := e.poll(t, sid); r.status != 400 {
			t.Fatalf("poll after close: %d", r.status)
		}
	})
	t.Run("polling, client gone", func(t *testing.T) {
		e := newEnv(t, Config{PingInterval: 100 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
		sid := e.handshake(t)
		e.srv.Socket(sid).Close()
		wantClose(t, e, ErrForcedClose)
	})
	t.Run("websocket", func(t *testing.T) {
		e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		c := e.dial(t, "EIO=4&transport=websocket")
		read(t, c)
		so := <-e.h.sockets
		_ = so.SendText([]byte("last"))
		so.Close()
		if _, data := read(t, c); data != "4last" {
			t.Fatalf("got %q", data)
		}
		if code := waitClosed(t, c, 3*time.Second); code != websocket.StatusNormalClosure {
			t.Fatalf("close %v", code)
		}
		wantClose(t, e, ErrForcedClose)
	})
}

type panicky struct{ *recorder }

func (panicky) OnMessage(*Socket, []byte, bool) { panic("handler bug") }

func TestHandlerPanic(t *testing.T) {
	e := newEnv(t, Config{})
	e.srv.cfg.OnConnection = func(*Socket, *http.Request) Handler { return panicky{e.h} }
	e.srv.log = discardLogger()
	c := e.dial(t, "EIO=4&transport=websocket")
	read(t, c)
	write(t, c, websocket.MessageText, "4boom")
	wantClose(t, e, ErrInternal)
	if code := waitClosed(t, c, 3*time.Second); code != websocket.StatusInternalError {
		t.Fatalf("close %v", code)
	}
	sid := e.handshake(t) // the server goes on
	if r := e.post(t, sid, "4boom"); r.status != 200 {
		t.Fatalf("post: %d", r.status)
	}
	wantClose(t, e, ErrInternal)
}

// An upgrade completed while a POST is being read waits for it: the
// POST's messages are handled first, and OnMessage calls never overlap.
func TestUpgradeWaitsForPost(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	e.h.noEcho = true
	sid := e.handshake(t)
	so := e.srv.Socket(sid)

	body, feed := io.Pipe()
	posted := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.url+"?EIO=4&transport=polling&sid="+sid, body)
		posted <- e.send(t, req)
	}()
	if _, err := feed.Write([]byte("4po")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		so.mu.Lock()
		defer so.mu.Unlock()
		return so.pstate() != nil && so.pstate().posting
	})

	c := e.dial(t, "EIO=4&transport=websocket&sid="+sid)
	write(t, c, websocket.MessageText, "2probe")
	if _, data := read(t, c); data != "3probe" {
		t.Fatalf("probe answered %q", data)
	}
	write(t, c, websocket.MessageText, "5")
	write(t, c, websocket.MessageText, "4ws")
	// The upgrade waits for the POST: the session is still on polling.
	waitFor(t, func() bool {
		so.mu.Lock()
		defer so.mu.Unlock()
		return so.pstate() != nil && so.pstate().postDone != nil
	})
	if tr := so.Transport(); tr != "polling" {
		t.Fatalf("transport %q while the POST is read", tr)
	}
	_, _ = feed.Write([]byte("st"))
	feed.Close()
	if r := <-posted; r.status != 200 {
		t.Fatalf("POST: %d %q", r.status, r.body)
	}
	waitFor(t, func() bool {
		e.h.mu.Lock()
		defer e.h.mu.Unlock()
		return len(e.h.msgs) == 2
	})
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	if got := strings.Join(e.h.msgs, " "); got != "t:post t:ws" {
		t.Fatalf("messages %q, want the POST's first", got)
	}
}

// A polling client cannot know of a ping it has not polled for, so a
// pong or a message it posts meanwhile does not prove it alive: a client
// that posts "3" blindly and never polls would otherwise keep its session,
// and the buffer it never reads, for good (a WebSocket that reads nothing
// is dropped by WriteTimeout). It times out as if it had sent nothing;
// a client that polls keeps its session.
func TestPollingBlindPong(t *testing.T) {
	for _, tt := range []struct {
		name  string
		polls bool
	}{{"blind", false}, {"polling", true}} {
		t.Run(tt.name, func(t *testing.T) {
			// A heartbeat of 600 ms and a loop of 2 s: the blind client
			// must be dropped, and the polling one must not.
			e := newEnv(t, Config{PingInterval: 100 * time.Millisecond, PingTimeout: 500 * time.Millisecond})
			sid := e.handshake(t)
			so := e.srv.Socket(sid)
			// One POST at a time, as a client sends them (a second one
			// while one is read closes the session).
			var postMu sync.Mutex
			post := func(body string) {
				postMu.Lock()
				defer postMu.Unlock()
				e.post(t, sid, body)
			}
			if tt.polls {
				// The polling client keeps a poll pending, as a real one
				// does, and answers a ping as soon as its poll brings it:
				// its pong takes one request after the ping, however
				// long the loop below takes a turn on a loaded machine.
				polled := make(chan struct{})
				go func() {
					defer close(polled)
					pollLoop(t, e, sid, &postMu)
				}()
				t.Cleanup(func() {
					so.Close()
					<-polled
				})
			}
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) && so.Err() == nil {
				post("3")
				post("4alive")
				time.Sleep(10 * time.Millisecond)
			}
			if tt.polls {
				if err := so.Err(); err != nil {
					t.Fatalf("a client that polls and pongs closed: %v", err)
				}
				so.Close() // the pending poll takes the close packet
				wantClose(t, e, ErrForcedClose)
				return
			}
			if err := so.Err(); !errors.Is(err, ErrPingTimeout) {
				t.Fatalf("blind pongs and messages for 2 s with a 600 ms heartbeat: %v, want ErrPingTimeout", err)
			}
			wantClose(t, e, ErrPingTimeout)
		})
	}
}

// A POST's Content-Length is the client's word, not bytes it sent: a
// client that announces MaxPayload and sends nothing (or drips it) must
// not make the server hold MaxPayload per request for as long as the
// server's read timeout lets it: the body's buffer grows with what
// arrives.
func TestPollingPostAnnouncedLengthNotPreallocated(t *testing.T) {
	const posts = 40
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	var socks []*Socket
	for range posts {
		sid := e.handshake(t)
		socks = append(socks, e.srv.Socket(sid))
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		fmt.Fprintf(nc, "POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n4", sid, DefaultMaxPayload)
	}
	waitPosting := func() bool {
		for _, so := range socks {
			so.mu.Lock()
			posting := so.pstate() != nil && so.pstate().posting
			so.mu.Unlock()
			if !posting {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !waitPosting(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the POSTs were not all being read after 5 s")
		}
	}
	time.Sleep(50 * time.Millisecond) // their reads under way
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	// Each announced 1 MB: preallocated, 40 MB of heap.
	if ms.HeapAlloc > 20<<20 {
		t.Fatalf("heap %d MB with %d POSTs that announced %d bytes and sent 1", ms.HeapAlloc>>20, posts, DefaultMaxPayload)
	}
}

// A POST body that arrives slowly is held in a buffer that grows with
// it, up to MaxPayload: many such POSTs, one per session, count in the
// read budget the WebSockets count their large frames in
// (Config.WebSocket.Reading). The POST whose buffer does not fit is
// answered 503 and its session closed; the bytes come back when the
// POSTs end, completed or abandoned.
func TestPollingPostReadBudget(t *testing.T) {
	const held = 128 << 10 // the buffer of a body of 70,000 B so far: 4 KiB doubled
	budget := transport.NewReadBudget(2 * held)
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute,
		WebSocket: transport.Options{Reading: budget}})
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	waitUsed := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); budget.Used() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("read budget counts %d B, want %d", budget.Used(), want)
			}
		}
	}
	const length = 200_000
	startPost := func() (net.Conn, string) {
		sid := e.handshake(t)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		fmt.Fprintf(nc, "POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n4", sid, length)
		_, _ = nc.Write([]byte(strings.Repeat("a", 70_000-1)))
		return nc, sid
	}
	first, _ := startPost()
	waitUsed(held)
	second, _ := startPost()
	waitUsed(2 * held)

	over, overSID := startPost()
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("third POST: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third POST: %d %q, want 503", resp.StatusCode, body)
	}
	if budget.Refused() != 1 || budget.Used() != 2*held {
		t.Fatalf("after the refusal: refused %d, used %d B; want 1 and %d", budget.Refused(), budget.Used(), 2*held)
	}
	if r := e.poll(t, overSID); r.status != 400 {
		t.Fatalf("poll of the refused session: %d %q, want 400 (closed)", r.status, r.body)
	}

	// One POST is abandoned, the other completes.
	second.Close()
	waitUsed(held)
	_, _ = first.Write([]byte(strings.Repeat("a", length-70_000)))
	resp, err = http.ReadResponse(bufio.NewReader(first), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("completed POST: %v %v", resp, err)
	}
	waitUsed(0)
}

// pollLoop polls session sid until it ends, and posts a pong (holding
// postMu) for each ping a poll brings. It runs on a goroutine of its own:
// it reports with t.Errorf, never t.Fatal.
func pollLoop(t *testing.T, e *testEnv, sid string, postMu *sync.Mutex) {
	url := e.url + "?EIO=4&transport=polling&sid=" + sid
	pong := func() {
		postMu.Lock()
		defer postMu.Unlock()
		resp, err := http.Post(url, "text/plain;charset=UTF-8", strings.NewReader("3"))
		if err != nil {
			t.Errorf("pong: %v", err)
			return
		}
		resp.Body.Close()
	}
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("poll: %v", err)
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("poll: %d %q %v", resp.StatusCode, b, err)
			return
		}
		for _, p := range strings.Split(string(b), "\x1e") {
			switch p {
			case "2":
				pong()
			case "1", "6": // closed
				return
			}
		}
	}
}

// A POST's packets are handled record by record, not decoded into one
// slice first: a body of one-byte packets (noops) made a slice of 40 B
// per byte pair, 13 MB for 666 KB, for each POST in flight.
func TestPollingPostNotAmplified(t *testing.T) {
	e := newEnv(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	sid := e.handshake(t)
	body := strings.Repeat("6\x1e", 333_333) + "6"
	e.post(t, sid, "6") // warm up the client's and server's connections
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if r := e.post(t, sid, body); r.status != 200 {
		t.Fatalf("POST of %d noops: %d %q", 333_334, r.status, r.body)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("POST of %d B, %d packets: %d B allocated (client and server)", len(body), 333_334, alloc)
	if alloc > 8<<20 {
		t.Fatalf("a POST of %d B allocated %d B", len(body), alloc)
	}
}
