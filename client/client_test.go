package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/client"
)

func TestJoinPublishReceive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	alice := dial(t, ts.URL, client.WithClientID("alice"))
	bob := dial(t, ts.URL, client.WithClientID("bob"))
	aliceEvents, bobEvents := collect(alice), collect(bob)
	var named atomic.Int32
	alice.On("message", func(client.Event) { named.Add(1) })
	alice.On("other", func(client.Event) { t.Error("handler of another event called") })

	ctx := ctxT(t)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.Join(ctx, "chat"); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
	if alice.UserID() != "alice" || alice.SessionID() == "" {
		t.Errorf("UserID %q SessionID %q", alice.UserID(), alice.SessionID())
	}
	msgID, err := bob.Publish(ctx, "chat", "message", map[string]string{"text": "hi"})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for name, evs := range map[string]*events{"alice": aliceEvents, "bob (the publisher)": bobEvents} {
		ev := evs.next(t)
		if ev.Room != "chat" || ev.Event != "message" || string(ev.Data) != `{"text":"hi"}` || ev.MsgID != msgID || ev.TS == 0 {
			t.Errorf("%s got %+v, want chat/message {\"text\":\"hi\"} %s", name, ev, msgID)
		}
	}
	waitFor(t, time.Second, "the named handler", func() bool { return named.Load() == 1 })

	// Messages to a user reach its own room without a join.
	if _, err := ts.Server().PublishToUser(ctx, "alice", "dm", json.RawMessage(`"psst"`)); err != nil {
		t.Fatal(err)
	}
	if ev := aliceEvents.next(t); ev.Room != "user:alice" || string(ev.Data) != `"psst"` {
		t.Errorf("direct message: got %+v", ev)
	}

	if err := alice.Leave(ctx, "chat"); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if got := alice.Rooms(); len(got) != 0 {
		t.Errorf("Rooms after Leave = %v", got)
	}
	if _, err := bob.Publish(ctx, "chat", "message", nil); err != nil {
		t.Fatal(err)
	}
	bobEvents.next(t)
	time.Sleep(50 * time.Millisecond)
	if n := aliceEvents.count(); n != 2 {
		t.Errorf("alice got %d events after leaving, want 2", n)
	}
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	c := dial(t, ts.URL)
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "load"); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = c.Publish(ctx, "load", "n", i) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil || ids[i] == "" || seen[ids[i]] {
			t.Fatalf("publish %d: id %q err %v", i, ids[i], errs[i])
		}
		seen[ids[i]] = true
	}
	for range n {
		if ev := evs.next(t); !seen[ev.MsgID] {
			t.Errorf("unexpected event %+v", ev)
		}
	}
}

func TestEmit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnEvent: func(_ context.Context, ci *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
			switch event {
			case "echo":
				return map[string]any{"user": ci.UserID, "got": data}, nil
			case "fail":
				return nil, errors.New("no such order")
			case "custom":
				return nil, &herald.EventError{Code: "out_of_stock", Message: "sold out"}
			}
			return nil, nil
		},
	}})
	c := dial(t, ts.URL, client.WithClientID("carol"))
	tests := []struct {
		name      string
		event     string
		data      any
		wantReply string
		wantCode  string
	}{
		{name: "reply", event: "echo", data: map[string]int{"n": 1}, wantReply: `{"got":{"n":1},"user":"carol"}`},
		{name: "raw data", event: "echo", data: json.RawMessage(`[1,2]`), wantReply: `{"got":[1,2],"user":"carol"}`},
		{name: "hook error", event: "fail", wantCode: "event_failed"},
		{name: "application code", event: "custom", wantCode: "out_of_stock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, err := c.Emit(ctxT(t), tt.event, tt.data)
			if tt.wantCode != "" {
				var se *client.ServerError
				if !errors.As(err, &se) || se.Code != tt.wantCode {
					t.Fatalf("Emit error = %v, want code %q", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("Emit: %v", err)
			}
			if string(reply) != tt.wantReply {
				t.Errorf("reply %s, want %s", reply, tt.wantReply)
			}
		})
	}
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MaxRoomsPerConn: 1})
	c := dial(t, ts.URL, client.WithClientID("dave"))
	if err := c.Join(ctxT(t), "first"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func(ctx context.Context) error
		code string
	}{
		{"join another user's room", func(ctx context.Context) error { return c.Join(ctx, "user:erin") }, "forbidden"},
		{"room limit", func(ctx context.Context) error { return c.Join(ctx, "second") }, "too_many_rooms"},
		{"publish without join", func(ctx context.Context) error {
			_, err := c.Publish(ctx, "elsewhere", "x", nil)
			return err
		}, "not_joined"},
		{"leave own user room", func(ctx context.Context) error { return c.Leave(ctx, "user:dave") }, "bad_request"},
		{"leave a room not joined", func(ctx context.Context) error { return c.Leave(ctx, "nowhere") }, "not_joined"},
		{"empty event", func(ctx context.Context) error {
			_, err := c.Publish(ctx, "first", "", nil)
			return err
		}, "bad_request"},
		{"emit without hook", func(ctx context.Context) error {
			_, err := c.Emit(ctx, "x", nil)
			return err
		}, "no_handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxT(t))
			var se *client.ServerError
			if !errors.As(err, &se) || se.Code != tt.code || se.Message == "" {
				t.Fatalf("got %v, want a *ServerError with code %q", err, tt.code)
			}
		})
	}
	// Refused joins are not remembered for the next connection.
	if got := c.Rooms(); len(got) != 1 || got[0] != "first" {
		t.Errorf("Rooms = %v, want [first]", got)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	t.Parallel()
	var authHeaders sync.Map // Authorization values seen by the server
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnConnect: func(_ context.Context, ci *herald.ConnInfo) error {
			authHeaders.Store(ci.Header.Get("Authorization"), true)
			return nil
		},
	}})
	var tokens atomic.Int32
	var st states
	c := dial(t, ts.URL,
		client.WithClientID("frank"),
		client.WithStateHandler(st.handler),
		client.WithTokenProvider(func(context.Context) (string, error) {
			return fmt.Sprintf("tok-%d", tokens.Add(1)), nil
		}))
	evs := collect(c)
	ctx := ctxT(t)
	for _, room := range []string{"news", "sports"} {
		if err := c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	firstSession := c.SessionID()

	ts.restart()
	waitFor(t, 5*time.Second, "reconnected", func() bool { return st.count(client.Connected) >= 2 })
	if c.SessionID() == firstSession {
		t.Errorf("SessionID still %q after reconnect", firstSession)
	}
	for _, room := range []string{"news", "sports"} {
		if _, err := ts.Server().Publish(ctx, room, "update", room); err != nil {
			t.Fatal(err)
		}
		if ev := evs.next(t); ev.Room != room {
			t.Errorf("after reconnect got %+v, want an event in %s", ev, room)
		}
	}
	if _, err := c.Publish(ctx, "news", "mine", nil); err != nil {
		t.Errorf("Publish after reconnect: %v", err)
	}
	if st.count(client.Reconnecting) == 0 {
		t.Error("no Reconnecting state reported")
	}
	for _, tok := range []string{"Bearer tok-1", fmt.Sprintf("Bearer tok-%d", tokens.Load())} {
		if _, ok := authHeaders.Load(tok); !ok || tokens.Load() < 2 {
			t.Errorf("server did not see %q (tokens asked: %d)", tok, tokens.Load())
		}
	}
}

func TestDrainHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	// Two servers behind one address, like two nodes behind a load
	// balancer: a drains, new connections go to b.
	cfg, _ := withDefaults(herald.Config{DrainRetryAfter: 400 * time.Millisecond, DrainTimeout: 3 * time.Second})
	a, err := herald.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ = withDefaults(herald.Config{})
	b, err := herald.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var node atomic.Pointer[herald.Server]
	node.Store(a)
	var mu sync.Mutex
	var upgrades []time.Time
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			mu.Lock()
			upgrades = append(upgrades, time.Now())
			mu.Unlock()
		}
		node.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		_ = a.Shutdown(context.Background())
		_ = b.Shutdown(context.Background())
		hs.Close()
	})

	var shutdownAt time.Time
	var retryAfter time.Duration
	var st states
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws",
		client.WithStateHandler(st.handler),
		client.WithFrameHandler(func(b []byte) {
			var f struct {
				Type         string `json:"type"`
				RetryAfterMs int64  `json:"retryAfterMs"`
			}
			if json.Unmarshal(b, &f) == nil && f.Type == "server_shutdown" {
				mu.Lock()
				shutdownAt, retryAfter = time.Now(), time.Duration(f.RetryAfterMs)*time.Millisecond
				mu.Unlock()
			}
		}))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "alerts"); err != nil {
		t.Fatal(err)
	}

	node.Store(b)
	drained := make(chan error, 1)
	drainStart := time.Now() // server_shutdown is sent, and noted by the client, after this
	go func() { drained <- a.Shutdown(context.Background()) }()
	// Until retryAfterMs has passed the client still receives from the
	// draining node.
	waitFor(t, 5*time.Second, "server_shutdown", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !shutdownAt.IsZero()
	})
	if _, err := a.Publish(ctx, "alerts", "during-drain", nil); err != nil {
		t.Fatal(err)
	}
	if ev := evs.next(t); ev.Event != "during-drain" {
		t.Errorf("got %+v while the node drained", ev)
	}
	waitFor(t, 5*time.Second, "reconnect to b", func() bool { return st.count(client.Connected) >= 2 })
	mu.Lock()
	if len(upgrades) != 2 || shutdownAt.IsZero() {
		t.Fatalf("upgrades %d, server_shutdown seen: %v", len(upgrades), !shutdownAt.IsZero())
	}
	// The client counts retryAfterMs from when its reader notes the
	// frame, which is after the drain began and before the frame handler
	// runs (on a loaded machine, tens of ms before): the drain's start
	// bounds how early it may come back, the handler's call how late.
	early, late := upgrades[1].Sub(drainStart), upgrades[1].Sub(shutdownAt)
	mu.Unlock()
	if early < retryAfter || late > retryAfter+time.Second {
		t.Errorf("reconnected %s after the drain began, %s after the frame handler saw server_shutdown, want retryAfterMs = %s",
			early, late, retryAfter)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(2 * time.Second):
		// The client left on its own: the drain need not wait for 1001.
		t.Error("drain still waiting for the client")
	}
	if _, err := b.Publish(ctx, "alerts", "after-drain", nil); err != nil {
		t.Fatal(err)
	}
	if ev := evs.next(t); ev.Event != "after-drain" {
		t.Errorf("got %+v after the drain", ev)
	}
}

func TestNetworkCut(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	p := startProxy(t, "", ts.addr)
	addr := p.addr()
	var st states
	c := dial(t, "ws://"+addr+"/ws", client.WithStateHandler(st.handler))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "ops"); err != nil {
		t.Fatal(err)
	}

	p.kill()
	waitFor(t, 5*time.Second, "Reconnecting", func() bool { return st.count(client.Reconnecting) == 1 })
	time.Sleep(100 * time.Millisecond) // a few refused attempts
	startProxy(t, addr, ts.addr)
	waitFor(t, 5*time.Second, "reconnected through the new proxy", func() bool { return st.count(client.Connected) == 2 })
	waitFor(t, 5*time.Second, "the old connection gone on the server", func() bool { return ts.Server().Connections() == 1 })

	if _, err := ts.Server().Publish(ctx, "ops", "page", "disk full"); err != nil {
		t.Fatal(err)
	}
	if ev := evs.next(t); ev.Room != "ops" || string(ev.Data) != `"disk full"` {
		t.Errorf("got %+v", ev)
	}
}

func TestSilentServerDetected(t *testing.T) {
	t.Parallel()
	// The server pings every 100ms (a pong timeout above the interval would
	// space its pings out to the timeout).
	ts := startServer(t, herald.Config{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 90 * time.Millisecond})
	p := startProxy(t, "", ts.addr)
	var st states
	c := dial(t, "ws://"+p.addr()+"/ws", client.WithStateHandler(st.handler))
	evs := collect(c)
	if err := c.Join(ctxT(t), "quiet"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(450 * time.Millisecond) // four heartbeats: pings keep it alive
	if n := st.count(client.Connected); n != 1 {
		t.Fatalf("%d connections while the server pinged, want 1", n)
	}
	start := time.Now()
	p.freeze() // no FIN, no RST: only missing pings tell
	waitFor(t, 2*time.Second, "reconnect after two silent heartbeats", func() bool { return st.count(client.Connected) == 2 })
	// The last ping came up to one heartbeat before the freeze.
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("gave up on the server %s after its last sign of life, before two heartbeats", took)
	}
	if _, err := ts.Server().Publish(ctxT(t), "quiet", "back", nil); err != nil {
		t.Fatal(err)
	}
	if ev := evs.next(t); ev.Event != "back" {
		t.Errorf("got %+v", ev)
	}
}

func TestDisconnectedWhileWaiting(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnEvent: func(ctx context.Context, _ *herald.ConnInfo, _ string, _ json.RawMessage) (any, error) {
			entered <- struct{}{}
			<-release
			return "late", nil
		},
	}})
	t.Cleanup(func() { close(release) }) // runs before the server stops
	p := startProxy(t, "", ts.addr)
	c := dial(t, "ws://"+p.addr()+"/ws")
	if err := c.Join(ctxT(t), "kept"); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Emit(ctxT(t), "slow", nil)
		errc <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never got the emit")
	}
	p.kill()
	if err := <-errc; !errors.Is(err, client.ErrDisconnected) {
		t.Errorf("Emit = %v, want ErrDisconnected", err)
	}
	if got := c.Rooms(); len(got) != 1 || got[0] != "kept" {
		t.Errorf("Rooms = %v, want [kept]", got)
	}
}

func TestAcksAreBatched(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: 300 * time.Millisecond})
	c := dial(t, ts.URL, client.WithAckBatch(100*time.Millisecond, 64))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if _, err := ts.Server().Publish(ctx, "orders", "created", i, herald.WithAck()); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		evs.next(t)
	}
	waitFor(t, 2*time.Second, "an ack frame", func() bool {
		return ts.metric("herald_messages_received_total", "type", "ack") > 0
	})
	time.Sleep(700 * time.Millisecond) // two ack timeouts: any miss is redelivered
	if got := ts.metric("herald_redeliveries_total"); got != 0 {
		t.Errorf("%v redeliveries: acks were not sent in time", got)
	}
	if got := ts.metric("herald_messages_received_total", "type", "ack"); got > 2 {
		t.Errorf("%v ack frames for %d messages, want them batched", got, n)
	}
	if evs.count() != n {
		t.Errorf("%d events handled, want %d", evs.count(), n)
	}
}

func TestAckBatchMax(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: time.Minute})
	c := dial(t, ts.URL, client.WithAckBatch(time.Hour, 4))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := ts.Server().Publish(ctx, "orders", "created", i, herald.WithAck()); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		evs.next(t)
	}
	// With an hour's interval, only reaching max sends acks.
	waitFor(t, 2*time.Second, "two full batches", func() bool {
		return ts.metric("herald_messages_received_total", "type", "ack") == 2
	})
}

func TestRedeliveryHandledOnce(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{AckTimeout: 30 * time.Millisecond, AckRetries: 3})
	var mu sync.Mutex
	frames := map[string]int{} // msgId → event frames received
	// Acks are held back for an hour, so the server redelivers.
	c := dial(t, ts.URL, client.WithAckBatch(time.Hour, 1024), client.WithFrameHandler(func(b []byte) {
		var f struct{ Type, MsgID string }
		if json.Unmarshal(b, &f) == nil && f.Type == "event" {
			mu.Lock()
			frames[f.MsgID]++
			mu.Unlock()
		}
	}))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	msgID, err := ts.Server().Publish(ctx, "once", "charge", 42, herald.WithAck())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "redeliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return frames[msgID] >= 3
	})
	time.Sleep(20 * time.Millisecond)
	if n := evs.count(); n != 1 {
		t.Errorf("handlers saw the message %d times, want once", n)
	}
	if ev := evs.next(t); ev.MsgID != msgID {
		t.Errorf("got %+v", ev)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	codes := make(chan int, 1)
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnDisconnect: func(_ context.Context, _ *herald.ConnInfo, code int, _ string) { codes <- code },
	}})
	var st states
	c, err := client.Dial(ctxT(t), ts.URL, client.WithStateHandler(st.handler))
	if err != nil {
		t.Fatal(err)
	}
	if c.State() != client.Connected {
		t.Errorf("State after Dial = %v", c.State())
	}
	if err := c.Join(ctxT(t), "r"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case code := <-codes:
		if code != 1000 {
			t.Errorf("server saw close code %d, want 1000", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the close")
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if !isClosed(c.Err()) || c.State() != client.Closed {
		t.Errorf("Err %v, State %v", c.Err(), c.State())
	}
	if err := c.Join(ctxT(t), "r"); !isClosed(err) {
		t.Errorf("Join after Close = %v", err)
	}
	if _, err := c.Emit(ctxT(t), "e", nil); !isClosed(err) {
		t.Errorf("Emit after Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := []int{st.count(client.Connecting), st.count(client.Connected), st.count(client.Closed)}; got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Errorf("states connecting/connected/closed = %v, want one each", got)
	}
}

func TestNoReconnectAfterTerminalClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    func(connects *atomic.Int32) herald.Config
		kick   func(ts *testServer)
		code   int
		reason string
	}{
		{
			name: "OnConnect refused: 1008",
			cfg: func(connects *atomic.Int32) herald.Config {
				return herald.Config{Hooks: herald.Hooks{OnConnect: func(context.Context, *herald.ConnInfo) error {
					connects.Add(1)
					return errors.New("banned")
				}}}
			},
			code: 1008, reason: "banned",
		},
		{
			name: "DisconnectUser: 4004",
			cfg: func(connects *atomic.Int32) herald.Config {
				return herald.Config{Hooks: herald.Hooks{OnConnect: func(context.Context, *herald.ConnInfo) error {
					connects.Add(1)
					return nil
				}}}
			},
			kick: func(ts *testServer) {
				if err := ts.Server().DisconnectUser(context.Background(), "gina", "bye"); err != nil {
					ts.t.Fatal(err)
				}
			},
			code: 4004, reason: "bye",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var connects atomic.Int32
			ts := startServer(t, tt.cfg(&connects))
			c := dial(t, ts.URL, client.WithClientID("gina"))
			if tt.kick != nil {
				tt.kick(ts)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("client still running")
			}
			var ce *client.CloseError
			if !errors.As(c.Err(), &ce) || ce.Code != tt.code || ce.Reason != tt.reason {
				t.Fatalf("Err = %v, want close %d %q", c.Err(), tt.code, tt.reason)
			}
			if err := c.Join(ctxT(t), "x"); !errors.As(err, &ce) {
				t.Errorf("Join after the end = %v, want the *CloseError", err)
			}
			time.Sleep(100 * time.Millisecond)
			if n := connects.Load(); n != 1 {
				t.Errorf("%d connections, want 1 (no reconnect)", n)
			}
		})
	}
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	_, err := client.Dial(ctxT(t), ts.URL, client.WithClientID("not a valid id!"))
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest || he.Code != "bad_client_id" {
		t.Fatalf("Dial = %v, want a 400 bad_client_id HandshakeError", err)
	}
	_, err = client.Dial(ctxT(t), ts.URL, client.WithTokenProvider(func(context.Context) (string, error) {
		return "", errors.New("vault sealed")
	}))
	if err == nil || !strings.Contains(err.Error(), "vault sealed") {
		t.Fatalf("Dial with a failing token provider = %v", err)
	}
}

func TestLargeCompressedMessage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	c := dial(t, ts.URL)
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("compressible ", 4000)
	if _, err := c.Publish(ctx, "big", "blob", text); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.Unmarshal(evs.next(t).Data, &got); err != nil || got != text {
		t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(text))
	}
}

// TestReconnectRefusedForGood: once a token has expired (beyond the
// leeway), the server closes the connection (4001) and refuses the
// reconnect with 401. A Client with a
// fixed token stops at the first refusal; one with a token provider gives
// the provider three chances, and carries on as soon as it gets a token the
// server accepts.
func TestReconnectRefusedForGood(t *testing.T) {
	t.Parallel()
	secret := []byte("client-test-secret-0123456789abcdef")
	sign := func(t *testing.T, ttl time.Duration) string {
		t.Helper()
		tok, err := jwt.Sign(secret, "gina", nil, nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	newServer := func(t *testing.T) *testServer {
		// A leeway of its own, short enough for the test: a token is
		// accepted until exp + 1 s, at the upgrade and on the open
		// connection alike.
		a, err := jwt.New(context.Background(), jwt.Config{Secret: secret, Leeway: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return startServer(t, herald.Config{Authenticator: a, TokenExpiryNotice: 100 * time.Millisecond})
	}
	refused := func(ts *testServer) float64 { return ts.metric("herald_upgrades_rejected_total") }
	// provider hands out toks in turn, then the last one again.
	provider := func(toks ...string) client.Option {
		var calls atomic.Int32
		return client.WithTokenProvider(func(context.Context) (string, error) {
			return toks[min(int(calls.Add(1)), len(toks))-1], nil
		})
	}
	waitStopped := func(t *testing.T, c *client.Client) {
		t.Helper()
		select {
		case <-c.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("client still running")
		}
		var he *client.HandshakeError
		if !errors.As(c.Err(), &he) || he.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Err = %v, want a 401 HandshakeError", c.Err())
		}
	}

	t.Run("fixed token", func(t *testing.T) {
		t.Parallel()
		ts := newServer(t)
		c := dial(t, ts.URL, client.WithHeader(http.Header{"Authorization": {"Bearer " + sign(t, 2*time.Second)}}),
			client.WithReconnect(10*time.Millisecond, 50*time.Millisecond))
		waitStopped(t, c)
		if n := refused(ts); n != 1 {
			t.Errorf("%v refused upgrades, want 1 (no retry with the same token)", n)
		}
		if n := ts.metric("herald_connections_opened_total"); n != 1 {
			t.Errorf("%v connections opened, want 1 (none accepted and closed at once within the leeway)", n)
		}
	})
	t.Run("token provider gets three tries", func(t *testing.T) {
		t.Parallel()
		ts := newServer(t)
		first := sign(t, 2*time.Second)
		c := dial(t, ts.URL, provider(first, first+"x" /* never valid */), client.WithReconnect(10*time.Millisecond, 50*time.Millisecond))
		waitStopped(t, c)
		if n := refused(ts); n != 3 {
			t.Errorf("%v refused upgrades, want 3", n)
		}
	})
	t.Run("token provider recovers", func(t *testing.T) {
		t.Parallel()
		ts := newServer(t)
		st := &states{}
		c := dial(t, ts.URL, provider(sign(t, 2*time.Second), "not-a-token", "not-a-token", sign(t, time.Minute)),
			client.WithReconnect(10*time.Millisecond, 50*time.Millisecond), client.WithStateHandler(st.handler))
		waitFor(t, 15*time.Second, "a second connection", func() bool { return st.count(client.Connected) >= 2 })
		if err := c.Err(); err != nil {
			t.Fatalf("Err = %v after recovering", err)
		}
		if n := refused(ts); n != 2 {
			t.Errorf("%v refused upgrades, want 2", n)
		}
	})
}

// TestHandshakeTimeout: WithHandshakeTimeout bounds an attempt against a
// server that accepts the connection and never answers the upgrade (the
// default, 30 s, would outlast the wait below).
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-accepted
		for _, c := range held {
			_ = c.Close()
		}
	})
	errc := make(chan error, 1)
	go func() {
		c, err := client.Dial(context.Background(), "ws://"+ln.Addr().String()+"/ws", client.WithHandshakeTimeout(200*time.Millisecond))
		if err == nil {
			_ = c.Close()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial against a silent server: %v, want a deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dial against a silent server still waiting after 10 s: WithHandshakeTimeout not applied")
	}
}

// TestRejoinRefusedForNowKeepsTheConnection: after a cut, a re-join the
// server refuses for now (here its OnJoin hook, as a slow broker would
// answer broker_unavailable) is asked again on the new connection, which
// the Client keeps: one reconnect, not one per refusal.
func TestRejoinRefusedForNowKeepsTheConnection(t *testing.T) {
	t.Parallel()
	var refuse atomic.Int32
	var refused atomic.Int32
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{OnJoin: func(context.Context, *herald.ConnInfo, string) error {
		if refuse.Add(-1) >= 0 {
			refused.Add(1)
			return &herald.EventError{Code: "try_later", Message: "busy"}
		}
		return nil
	}}})
	p := startProxy(t, "", ts.addr)
	addr := p.addr()
	var st states
	c := dial(t, "ws://"+addr+"/ws", client.WithStateHandler(st.handler), client.WithReconnect(10*time.Millisecond, 50*time.Millisecond))
	ctx := ctxT(t)
	if err := c.Join(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	opened := ts.metric("herald_connections_opened_total")

	refuse.Store(3)
	p.kill()
	startProxy(t, addr, ts.addr)
	waitFor(t, 10*time.Second, "reconnected and joined again", func() bool { return st.count(client.Connected) == 2 })
	if got := refused.Load(); got != 3 {
		t.Fatalf("the server refused %d re-joins, want 3", got)
	}
	if got := ts.metric("herald_connections_opened_total") - opened; got != 1 {
		t.Errorf("%v connections opened after the cut, want 1: a re-join refused for now dropped the connection", got)
	}
	evs := collect(c)
	if _, err := ts.Server().Publish(ctx, "ops", "page", "disk full"); err != nil {
		t.Fatal(err)
	}
	if ev := evs.next(t); ev.Room != "ops" {
		t.Errorf("got %+v", ev)
	}
}
