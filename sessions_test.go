package herald_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
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
