package herald_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/internal/testserver"
	memsession "github.com/heraldrt/herald/session/memory"
	redissession "github.com/heraldrt/herald/session/redis"
)

// TestCarriedMessagesOverTheStoreBoundAreTold: a Redis session store
// keeps a session's unacknowledged messages within its byte bound; those
// it drops are counted and logged on the node that carried them, and the
// connection that resumes the session, on another node, gets the kept
// one again and a gap frame for each room that lost one: nothing is lost
// silently.
func TestCarriedMessagesOverTheStoreBoundAreTold(t *testing.T) {
	t.Parallel()
	r := testserver.StartRedis(t)
	// Room for one message of this test (frames of about 275 bytes).
	st, err := redissession.New(redissession.Config{URL: r.URL(), MaxPendingBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	a := startServer(t, herald.Config{AckTimeout: time.Minute, Sessions: st, Presence: st.Presence(0)})
	st2, err := redissession.New(redissession.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	b := startServer(t, herald.Config{AckTimeout: time.Minute, Sessions: st2, Presence: st2.Presence(0)})

	c := dial(t, a.URL, withHeader("X-Client-Id", "far"))
	c.join("news")
	c.join("orders")
	var ids []string
	for _, room := range []string{"news", "orders", "orders"} {
		id, err := a.Publish(context.Background(), room, "created", map[string]string{"pad": strings.Repeat("x", 150)}, herald.WithAck())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		c.expect("event")
	}
	sid, tok := str(c.welcome["sessionId"]), str(c.welcome["resumeToken"])
	_ = c.c.CloseNow() // lost, not closed: the session is kept
	waitFor(t, 5*time.Second, "the messages carried, two of them dropped over the store's bound", func() bool {
		return metricValue(t, a, "herald_acks_carried_total") == 3 && metricValue(t, a, "herald_acks_dropped_total") == 2 &&
			logCount(t, a, "unacknowledged messages of the session dropped: over the session store's bounds; the resuming client is told (gap)") == 1
	})

	if v := metricValue(t, a, "herald_session_pending_bytes"); v < 3*150 {
		t.Fatalf("herald_session_pending_bytes = %v after three messages were stored with the session", v)
	}

	rc := dial(t, b.URL, withHeader("X-Client-Id", "far"), withHeader("X-Herald-Session-Id", sid), withHeader("X-Herald-Resume-Token", tok))
	if rc.welcome["resumed"] != true {
		t.Fatalf("welcome %v", rc.welcome)
	}
	var got []string
	for range 4 {
		m := rc.read()
		switch m["type"] {
		case "event":
			got = append(got, fmt.Sprintf("event %s", m["msgId"]))
		case "gap":
			got = append(got, fmt.Sprintf("gap %s", m["room"]))
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	slices.Sort(got)
	// The user room's gap: what was sent to the user while it was away
	// (see TestResumeTellsOfWhatItMayHaveMissed); each room named once.
	if want := []string{"event " + ids[2], "gap news", "gap orders", "gap user:far"}; !slices.Equal(got, want) {
		t.Fatalf("after the resume: %v, want %v", got, want)
	}
	if v := metricValue(t, b, "herald_gap_frames_total"); v != 3 {
		t.Fatalf("herald_gap_frames_total = %v on the resuming node", v)
	}
	_ = rc.c.Close(websocket.StatusNormalClosure, "")
}

// TestCarriedMessagesOverTheMemoryStoreBoundAreTold: the in-memory
// session store refuses what would take it past its byte bound; the
// messages are counted and logged, and the connection that resumes the
// session gets a gap frame for each room that lost one (before, only the
// count and the log said so).
func TestCarriedMessagesOverTheMemoryStoreBoundAreTold(t *testing.T) {
	t.Parallel()
	st := memsession.New(time.Minute)
	t.Cleanup(func() { st.Close() })
	st.LimitPending(400) // less than the three messages of this test (about 275 bytes each)
	a := startServer(t, herald.Config{AckTimeout: time.Minute, Sessions: st})

	c := dial(t, a.URL, withHeader("X-Client-Id", "near"))
	c.join("news")
	c.join("orders")
	c.join("quiet")
	for _, room := range []string{"news", "orders", "orders"} {
		if _, err := a.Publish(context.Background(), room, "created", map[string]string{"pad": strings.Repeat("x", 150)}, herald.WithAck()); err != nil {
			t.Fatal(err)
		}
		c.expect("event")
	}
	sid, tok := str(c.welcome["sessionId"]), str(c.welcome["resumeToken"])
	_ = c.c.CloseNow() // lost, not closed: the session is kept
	waitFor(t, 5*time.Second, "the three messages dropped over the store's bound", func() bool {
		return metricValue(t, a, "herald_acks_dropped_total") == 3 &&
			logCount(t, a, "connection ended with unacknowledged messages; they are not redelivered") == 1
	})

	rc := dial(t, a.URL, withHeader("X-Client-Id", "near"), withHeader("X-Herald-Session-Id", sid), withHeader("X-Herald-Resume-Token", tok))
	if rc.welcome["resumed"] != true {
		t.Fatalf("welcome %v", rc.welcome)
	}
	var got []string
	for range 4 {
		m := rc.read()
		if m["type"] != "gap" {
			t.Fatalf("unexpected %v", m)
		}
		got = append(got, str(m["room"]))
	}
	slices.Sort(got)
	// news and orders lost messages; quiet and the user room are named
	// as every room a resume comes back to without a replay is (see
	// TestResumeTellsOfWhatItMayHaveMissed), each once.
	if want := []string{"news", "orders", "quiet", "user:near"}; !slices.Equal(got, want) {
		t.Fatalf("gap frames for %v, want %v", got, want)
	}
	if v := metricValue(t, a, "herald_gap_frames_total"); v != 4 {
		t.Fatalf("herald_gap_frames_total = %v", v)
	}
	_ = rc.c.Close(websocket.StatusNormalClosure, "")
}
