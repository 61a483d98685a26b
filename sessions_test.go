package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/internal/testserver"
	"github.com/heraldrt/herald/protocol"
	redissession "github.com/heraldrt/herald/session/redis"
)

func TestSessionResume(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "ivy"))
	c.join("a")
	c.join("b")
	sid, tok := c.welcome["sessionId"].(string), c.welcome["resumeToken"].(string)
	if c.welcome["resumed"] != false || tok == "" {
		t.Fatalf("first welcome: %v", c.welcome)
	}
	_ = c.c.CloseNow() // the network drops: the session stays
	waitFor(t, 2*time.Second, "disconnect", func() bool { return ts.Connections() == 0 })

	resume := func(user, sid, tok string) *wsClient {
		return dial(t, ts.URL, withHeader("X-Client-Id", user), withHeader("X-Herald-Session-Id", sid), withHeader("X-Herald-Resume-Token", tok))
	}
	// Another user cannot take the session, even with its token.
	if w := resume("mallory", sid, tok).welcome; w["resumed"] != false || w["sessionId"] == sid {
		t.Fatalf("another user resumed ivy's session: %v", w)
	}
	// A wrong token gets a fresh session.
	if w := resume("ivy", sid, "wrong").welcome; w["resumed"] != false {
		t.Fatalf("wrong token resumed: %v", w)
	}
	r := resume("ivy", sid, tok)
	w := r.welcome
	if w["resumed"] != true || w["sessionId"] != sid || fmt.Sprint(sortedAny(w["rooms"])) != "[a b]" {
		t.Fatalf("resume: %v", w)
	}
	if w["resumeToken"] == tok {
		t.Fatalf("resume token not rotated")
	}
	r.expectGaps("a", "b", "user:ivy")
	// The restored rooms deliver without a join.
	if _, err := ts.Publish(context.Background(), "b", "after", 1); err != nil {
		t.Fatal(err)
	}
	if m := r.expect("event"); m["room"] != "b" {
		t.Fatalf("got %v", m)
	}
	// The old token was single-use.
	if w2 := resume("ivy", sid, tok).welcome; w2["resumed"] != false {
		t.Fatalf("old resume token worked twice: %v", w2)
	}
	// A clean close (1000) ends the session for good.
	newTok := w["resumeToken"].(string)
	before := ts.Connections()
	_ = r.c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, 2*time.Second, "clean close", func() bool { return ts.Connections() == before-1 })
	if w3 := resume("ivy", sid, newTok).welcome; w3["resumed"] != false {
		t.Fatalf("session survived a clean close: %v", w3)
	}
	// Browsers pass them as query parameters.
	q := dial(t, ts.URL+"?clientId=jay")
	qs, qt := q.welcome["sessionId"].(string), q.welcome["resumeToken"].(string)
	_ = q.c.CloseNow()
	if w4 := dial(t, ts.URL+"?clientId=jay&sessionId="+qs+"&resumeToken="+qt).welcome; w4["resumed"] != true {
		t.Fatalf("query-parameter resume: %v", w4)
	}
}

func sortedAny(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, fmt.Sprint(e))
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestPresenceAPIAndEvents(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{PresenceEvents: true})
	a1 := dial(t, ts.URL, withHeader("X-Client-Id", "ann"))
	a2 := dial(t, ts.URL, withHeader("X-Client-Id", "ann"))
	b := dial(t, ts.URL, withHeader("X-Client-Id", "ben"))
	a1.join("hall")
	a2.join("hall")
	b.join("hall")
	get := func(room string) (int, map[string]any) {
		code, _, m := apiCall(t, ts, "GET", "/api/v1/rooms/"+room+"/presence", testAPIKey, "")
		return code, m
	}
	code, m := get("hall")
	if code != 200 || m["connections"] != float64(3) || fmt.Sprint(m["users"]) != "[map[connections:2 user:ann] map[connections:1 user:ben]]" {
		t.Fatalf("presence: %d %v", code, m)
	}
	// ann's second connection leaves: ben, in the room, gets the presence event.
	_ = a2.c.Close(websocket.StatusNormalClosure, "")
	for {
		e := b.expect("event")
		if e["event"] != "presence" {
			t.Fatalf("unexpected event %v", e)
		}
		d := e["data"].(map[string]any)
		if d["action"] == "leave" && d["user"] == "ann" {
			break
		}
	}
	if code, m := get("hall"); code != 200 || m["connections"] != float64(2) {
		t.Fatalf("after leave: %d %v", code, m)
	}
	req, _ := http.NewRequest("GET", ts.HTTP.URL+"/api/v1/rooms/hall/presence", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("presence without key: %d", resp.StatusCode)
	}
	_ = a1
}

// TestConcurrentResumesOneWins replays one resume token from many clients
// at once, on two nodes sharing a real Redis session store: the token
// works once, so exactly one client resumes the session.
func TestConcurrentResumesOneWins(t *testing.T) {
	t.Parallel()
	r := testserver.StartRedis(t)
	node := func() *testServer {
		st, err := redissession.New(redissession.Config{URL: r.URL()})
		if err != nil {
			t.Fatal(err)
		}
		return startServer(t, herald.Config{Sessions: st})
	}
	nodes := []*testServer{node(), node()}
	const tries = 16
	for round := range 3 {
		c := dial(t, nodes[0].URL, withHeader("X-Client-Id", "ivy"))
		c.join("a")
		sid, tok := c.welcome["sessionId"].(string), c.welcome["resumeToken"].(string)
		_ = c.c.CloseNow()
		waitFor(t, 2*time.Second, "disconnect", func() bool { return nodes[0].Connections() == 0 })

		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			resumed atomic.Int32
			fresh   atomic.Int32
		)
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				conn, _, err := websocket.Dial(ctx, nodes[i%2].URL, &websocket.DialOptions{HTTPHeader: http.Header{
					"X-Client-Id": {"ivy"}, "X-Herald-Session-Id": {sid}, "X-Herald-Resume-Token": {tok},
				}})
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				defer conn.CloseNow()
				_, b, err := conn.Read(ctx)
				if err != nil {
					t.Errorf("read welcome: %v", err)
					return
				}
				var w struct {
					Type    string `json:"type"`
					Resumed bool   `json:"resumed"`
				}
				if err := json.Unmarshal(b, &w); err != nil || w.Type != "welcome" {
					t.Errorf("first frame %s (%v), want a welcome", b, err)
					return
				}
				if w.Resumed {
					resumed.Add(1)
				} else {
					fresh.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if resumed.Load() != 1 || fresh.Load() != tries-1 {
			t.Fatalf("round %d: %d of %d concurrent resumes with one token succeeded (%d refused), want exactly 1",
				round, resumed.Load(), tries, fresh.Load())
		}
	}
}

// TestOpenerOnRedis: with a Redis presence made from the session store
// (a session.Opener), a new connection's session and presence entry are
// written together: the session resumes on another node, and the user is
// present in its user room until the connection leaves.
func TestOpenerOnRedis(t *testing.T) {
	t.Parallel()
	r := testserver.StartRedis(t)
	st, err := redissession.New(redissession.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	pr := st.Presence(0)
	a := startServer(t, herald.Config{Sessions: st, Presence: pr})
	st2, err := redissession.New(redissession.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	b := startServer(t, herald.Config{Sessions: st2, Presence: st2.Presence(0)})
	if !a.UsesOpener() || !b.UsesOpener() {
		t.Fatal("the presence made from the session store is not used as a session.Opener")
	}
	other, err := redissession.NewPresence(redissession.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if c := startServer(t, herald.Config{Sessions: st2, Presence: other}); c.UsesOpener() {
		t.Fatal("a presence that saves into no store (or another) is used as a session.Opener")
	}

	c := dial(t, a.URL, withHeader("X-Client-Id", "kim"))
	sid, tok := c.welcome["sessionId"].(string), c.welcome["resumeToken"].(string)
	entries, err := pr.List(context.Background(), protocol.UserRoom("kim"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].User != "kim" || entries[0].Connections != 1 {
		t.Fatalf("presence in kim's user room: %+v", entries)
	}
	_ = c.c.CloseNow()
	waitFor(t, 2*time.Second, "disconnect", func() bool { return a.Connections() == 0 })
	waitFor(t, 2*time.Second, "presence removed", func() bool {
		e, err := pr.List(context.Background(), protocol.UserRoom("kim"))
		return err == nil && len(e) == 0
	})
	w := dial(t, b.URL, withHeader("X-Client-Id", "kim"), withHeader("X-Herald-Session-Id", sid), withHeader("X-Herald-Resume-Token", tok)).welcome
	if w["resumed"] != true || w["sessionId"] != sid {
		t.Fatalf("resume on the other node: %v", w)
	}
}

// countingClient counts the calls a Redis session store makes, the first
// command of each: on one Redis (not a Cluster) each Do and each DoMulti
// is one round trip.
type countingClient struct {
	rueidis.Client
	mu    sync.Mutex
	calls []string
}

func (c *countingClient) record(cmds ...rueidis.Completed) {
	var names []string
	for _, cmd := range cmds {
		if args := cmd.Commands(); len(args) > 0 {
			names = append(names, args[0])
		}
	}
	c.mu.Lock()
	c.calls = append(c.calls, strings.Join(names, " "))
	c.mu.Unlock()
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.record(cmd)
	return c.Client.Do(ctx, cmd)
}

func (c *countingClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	c.record(multi...)
	return c.Client.DoMulti(ctx, multi...)
}

// since returns the calls made after the first n.
func (c *countingClient) since(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls[n:]...)
}

func (c *countingClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// TestResumeRoundTrips: on Redis, a resume costs the session store two
// round trips whatever the number of rooms it restores (the resume
// itself, then the session save, every presence entry and the take of
// what the session carried in one pipeline), and a join one (its
// presence entry and the session save), with history or without. The
// store's calls are counted on its rueidis client against a real Redis.
func TestResumeRoundTrips(t *testing.T) {
	t.Parallel()
	r := testserver.StartRedis(t)
	for _, rooms := range []int{1, 8} {
		t.Run(fmt.Sprint(rooms, " rooms"), func(t *testing.T) {
			t.Parallel()
			quiet := herald.Config{SessionTTL: time.Hour, LeaseTTL: time.Hour, // no refresh or lease renewal in between
				History: []herald.HistoryRule{{Pattern: "h:*", Size: 100}}}
			stA, err := redissession.New(redissession.Config{URL: r.URL()})
			if err != nil {
				t.Fatal(err)
			}
			cfgA := quiet
			cfgA.Sessions, cfgA.Presence = stA, stA.Presence(0)
			a := startServer(t, cfgA)

			opt, err := rueidis.ParseURL(r.URL())
			if err != nil {
				t.Fatal(err)
			}
			base, err := rueidis.NewClient(opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(base.Close)
			cc := &countingClient{Client: base}
			stB, err := redissession.New(redissession.Config{Client: cc})
			if err != nil {
				t.Fatal(err)
			}
			cfgB := quiet
			cfgB.Sessions, cfgB.Presence = stB, stB.Presence(0)
			b := startServer(t, cfgB)
			// Load the resume script into Redis first: the first resume a
			// Redis sees costs one more round trip (NOSCRIPT, then EVAL).
			if _, err := stB.Resume(context.Background(), "no-such-session", "u", "t", "n"); err == nil {
				t.Fatal("resume of a session that does not exist succeeded")
			}

			user := fmt.Sprint("rt-", rooms)
			c := dial(t, a.URL, withHeader("X-Client-Id", user))
			for i := range rooms {
				c.join(fmt.Sprint(user, "-r", i))
			}
			sid, tok := c.welcome["sessionId"].(string), c.welcome["resumeToken"].(string)
			_ = c.c.CloseNow()

			before := cc.count()
			w := dial(t, b.URL, withHeader("X-Client-Id", user), withHeader("X-Herald-Session-Id", sid),
				withHeader("X-Herald-Resume-Token", tok), withHeader("X-Herald-Recover", "1"))
			if w.welcome["resumed"] != true {
				t.Fatalf("not resumed: %v", w.welcome)
			}
			if got, _ := w.welcome["rooms"].([]any); len(got) != rooms {
				t.Fatalf("welcome restored rooms %v, want %d", w.welcome["rooms"], rooms)
			}
			resume := cc.since(before)
			before = cc.count()
			w.join("h:" + user) // keeps history
			w.join(user + "-plain")
			join := cc.since(before)
			if len(resume) != 2 || len(join) != 2 {
				t.Errorf("session store round trips: resume %d %q, want 2; two joins %d %q, want 1 each",
					len(resume), resume, len(join), join)
			}
			entries, err := stB.Presence(0).List(context.Background(), user+"-r0")
			if err != nil || len(entries) != 1 || entries[0].User != user {
				t.Errorf("presence in a restored room: %+v, %v", entries, err)
			}
			sess, err := stB.Get(context.Background(), sid)
			if err != nil || len(sess.Rooms) != rooms+2 {
				t.Errorf("session after the joins: %+v, %v; want %d rooms", sess, err, rooms+2)
			}
		})
	}
}

// A client that joins 128 rooms of long names and drops its connection
// leaves a session of 35 KB for --session-ttl, and nothing bounded how
// many such sessions a node kept. The in-memory store now forgets others
// when a save takes it over its bound, those closest to their expiry
// first (ended connections' are not refreshed), each counted in
// {limit="node_session_bytes"}: the oldest dropped client cannot resume,
// the newest can.
func TestEndedSessionsBoundedInBytes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	const bound = 100_000 // two such sessions, not three
	sessionBytes := ts.Server.LimitSessions(bound)
	rooms := make([]string, 128)
	type left struct{ id, sid, tok string }
	var gone []left
	for i := range 6 {
		id := fmt.Sprintf("hoarder-%d", i)
		c := dial(t, ts.URL, withHeader("X-Client-Id", id))
		for j := range rooms {
			rooms[j] = fmt.Sprintf("%03d-%03d-%s", i, j, strings.Repeat("r", 240))
			c.send(map[string]any{"type": "join", "id": j, "room": rooms[j]})
		}
		for range rooms {
			if m := c.read(); m["type"] != "reply" {
				t.Fatalf("join: %v", m)
			}
		}
		gone = append(gone, left{id, str(c.welcome["sessionId"]), str(c.welcome["resumeToken"])})
		_ = c.c.CloseNow() // the network lost: the session is kept for its resume
		waitFor(t, 5*time.Second, "the connection gone", func() bool { return ts.Server.Connections() == 0 })
		if n := sessionBytes(); n > bound {
			t.Fatalf("after %d clients left, the sessions count %d B, over %d", i+1, n, bound)
		}
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_session_bytes"}`); v < 3 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_session_bytes"} = %v, want at least 3`, v)
	}
	resume := func(l left) any {
		r := dial(t, ts.URL, withHeader("X-Client-Id", l.id), withHeader("X-Herald-Session-Id", l.sid), withHeader("X-Herald-Resume-Token", l.tok))
		defer r.c.CloseNow()
		return r.welcome["resumed"]
	}
	if got := resume(gone[0]); got == true {
		t.Fatal("the first client's session, forgotten, was resumed")
	}
	if got := resume(gone[len(gone)-1]); got != true {
		t.Fatalf("the last client's session: resumed %v, want true", got)
	}
}
