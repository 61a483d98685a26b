package sessiontest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/session"
)

// Run runs the conformance table against the store that newStore builds.
// Stores from one call may be shared by parallel cases; Run closes each
// store it asked for when its case ends.
func Run(t *testing.T, newStore func(t *testing.T) session.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, st session.Store)
	}{
		{name: "save then get", run: testSaveGet},
		{name: "get missing", run: testGetMissing},
		{name: "save replaces", run: testReplace},
		{name: "keeps no caller state; get returns a copy", run: testCopy},
		{name: "touch updates lastSeen only", run: testTouch},
		{name: "touch missing", run: testTouchMissing},
		{name: "ttl expiry", run: testExpiry},
		{name: "touch extends ttl", run: testTouchExtends},
		{name: "touch after expiry", run: testTouchExpired},
		{name: "delete", run: testDelete},
		{name: "sessions of several nodes", run: testNodes},
		{name: "pending messages: add, take once, oldest first", run: testPending},
		{name: "pending messages: bounded to the newest max", run: testPendingMax},
		{name: "pending messages: expire, and go with the session", run: testPendingExpiry},
		{name: "resume swaps the token", run: testResume},
		{name: "resume refuses a wrong token or user", run: testResumeMismatch},
		{name: "resume missing or expired", run: testResumeMissing},
		{name: "concurrent resumes with one token: exactly one wins", run: testResumeRace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.run(t, st)
		})
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func sample() *session.Session {
	now := time.Now()
	return &session.Session{
		ID:          "s-" + rand.Text()[:12],
		UserID:      "user-1",
		Node:        "node-a",
		Conn:        "conn-1",
		ResumeToken: "resume-" + rand.Text()[:8],
		Rooms:       []string{"lobby", "user:user-1"},
		ConnectedAt: now.Add(-time.Minute),
		LastSeen:    now,
	}
}

// equal compares sessions the way a round trip through any store must
// preserve them: same instants (not locations) and same rooms.
func equal(a, b *session.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Node == b.Node &&
		a.Conn == b.Conn && a.ResumeToken == b.ResumeToken &&
		slices.Equal(a.Rooms, b.Rooms) &&
		a.ConnectedAt.Equal(b.ConnectedAt) && a.LastSeen.Equal(b.LastSeen)
}

func mustGet(t *testing.T, st session.Store, id string) *session.Session {
	t.Helper()
	s, err := st.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return s
}

func mustSave(t *testing.T, st session.Store, s *session.Session, ttl time.Duration) {
	t.Helper()
	if err := st.Save(ctx(t), s, ttl); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

// waitGone polls until id is reported missing.
func waitGone(t *testing.T, st session.Store, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := st.Get(ctx(t), id)
		if errors.Is(err, session.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s did not expire", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testSaveGet(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	if got := mustGet(t, st, s.ID); !equal(got, s) {
		t.Fatalf("got %+v, want %+v", got, s)
	}
}

func testGetMissing(t *testing.T, st session.Store) {
	if _, err := st.Get(ctx(t), "missing-"+rand.Text()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
}

func testReplace(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	r := *s
	r.Node, r.Rooms = "node-b", []string{"other"}
	mustSave(t, st, &r, time.Minute)
	if got := mustGet(t, st, s.ID); !equal(got, &r) {
		t.Fatalf("got %+v, want %+v", got, &r)
	}
}

func testCopy(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	// The caller reuses s (not its Rooms, which a store may keep).
	want := *s
	s.UserID, s.Node, s.ResumeToken, s.Rooms = "changed-after-save", "changed", "changed", nil
	got := mustGet(t, st, want.ID)
	if !equal(got, &want) {
		t.Fatalf("got %+v, want %+v", got, &want)
	}
	got.Rooms[1] = "changed-after-get"
	again := mustGet(t, st, want.ID)
	if wantRooms := []string{"lobby", "user:user-1"}; !slices.Equal(again.Rooms, wantRooms) {
		t.Fatalf("rooms = %v, want %v", again.Rooms, wantRooms)
	}
}

func testTouch(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	seen := s.LastSeen.Add(30 * time.Second)
	if err := st.Touch(ctx(t), s.ID, seen, time.Minute); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	want := *s
	want.LastSeen = seen
	if got := mustGet(t, st, s.ID); !equal(got, &want) {
		t.Fatalf("got %+v, want %+v", got, &want)
	}
}

func testTouchMissing(t *testing.T, st session.Store) {
	if err := st.Touch(ctx(t), "missing-"+rand.Text(), time.Now(), time.Minute); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch missing = %v, want ErrNotFound", err)
	}
}

func testExpiry(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, 50*time.Millisecond)
	waitGone(t, st, s.ID)
}

func testTouchExtends(t *testing.T, st session.Store) {
	const short = 100 * time.Millisecond
	s := sample()
	saved := time.Now()
	mustSave(t, st, s, short)
	if err := st.Touch(ctx(t), s.ID, time.Now(), time.Minute); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	// Asserting that something lasts needs time to pass: wait out the
	// original TTL with margin.
	time.Sleep(time.Until(saved.Add(3 * short)))
	mustGet(t, st, s.ID)
}

func testTouchExpired(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, 20*time.Millisecond)
	waitGone(t, st, s.ID)
	if err := st.Touch(ctx(t), s.ID, time.Now(), time.Minute); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch expired = %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx(t), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after touching an expired session = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	if err := st.Delete(ctx(t), s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(ctx(t), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx(t), s.ID); err != nil {
		t.Fatalf("Delete missing: %v", err)
	}
}

// testNodes keeps sessions of several nodes side by side (one store can
// hold a cluster's, and a memory store may keep the node apart from the
// session) and moves them between nodes.
func testNodes(t *testing.T, st session.Store) {
	var ss []*session.Session
	for _, node := range []string{"node-a", "node-b", "node-a", "node-c"} {
		s := sample()
		s.Node = node
		mustSave(t, st, s, time.Minute)
		ss = append(ss, s)
	}
	check := func(step string) {
		t.Helper()
		for _, s := range ss {
			if got := mustGet(t, st, s.ID); !equal(got, s) {
				t.Fatalf("%s: got %+v, want %+v", step, got, s)
			}
		}
	}
	check("saved")
	ss[0].Node, ss[1].Node = "node-b", "node-a" // a resume moves a session
	mustSave(t, st, ss[0], time.Minute)
	mustSave(t, st, ss[1], time.Minute)
	check("moved")
	for _, s := range ss[:3] {
		if err := st.Delete(ctx(t), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	ss = ss[3:]
	check("three deleted")
	s := sample()
	s.Node = "node-d"
	mustSave(t, st, s, time.Minute)
	ss = append(ss, s)
	check("saved after deletes")
}

func pendingStore(t *testing.T, st session.Store) session.PendingStore {
	t.Helper()
	ps, ok := st.(session.PendingStore)
	if !ok {
		t.Fatalf("%T does not implement session.PendingStore", st)
	}
	return ps
}

func pendings(ids ...string) []session.Pending {
	var out []session.Pending
	for _, id := range ids {
		out = append(out, session.Pending{MsgID: id, Frame: []byte(`{"type":"event","msgId":"` + id + `"}`)})
	}
	return out
}

func pendingIDs(t *testing.T, ps session.PendingStore, id string) []string {
	t.Helper()
	got, err := ps.TakePending(ctx(t), id)
	if err != nil {
		t.Fatalf("TakePending: %v", err)
	}
	var ids []string
	for _, p := range got {
		if p.Lost > 0 {
			continue // a record of dropped messages (testPendingMax)
		}
		if string(p.Frame) != `{"type":"event","msgId":"`+p.MsgID+`"}` {
			t.Fatalf("frame of %s changed: %q", p.MsgID, p.Frame)
		}
		ids = append(ids, p.MsgID)
	}
	return ids
}

func testPending(t *testing.T, st session.Store) {
	ps := pendingStore(t, st)
	if ids := pendingIDs(t, ps, "none"); len(ids) != 0 {
		t.Fatalf("pending of an unknown session: %v", ids)
	}
	msgs := pendings("a", "b")
	if err := ps.AddPending(ctx(t), "s1", msgs, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	msgs[0].Frame[0] = 'X' // the store keeps no caller state
	if err := ps.AddPending(ctx(t), "s1", pendings("c"), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := ps.AddPending(ctx(t), "s2", pendings("z"), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ids := pendingIDs(t, ps, "s1"); fmt.Sprint(ids) != "[a b c]" {
		t.Fatalf("took %v, want [a b c]", ids)
	}
	if ids := pendingIDs(t, ps, "s1"); len(ids) != 0 {
		t.Fatalf("taken twice: %v", ids)
	}
	if ids := pendingIDs(t, ps, "s2"); fmt.Sprint(ids) != "[z]" {
		t.Fatalf("other session: %v", ids)
	}
}

func testPendingMax(t *testing.T, st session.Store) {
	ps := pendingStore(t, st)
	if err := ps.AddPending(ctx(t), "s", pendings("a", "b", "c"), 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	// A store may say what it dropped (*session.PendingDropped).
	var pd *session.PendingDropped
	if err := ps.AddPending(ctx(t), "s", pendings("d", "e"), 4, time.Minute); err != nil && !(errors.As(err, &pd) && pd.Messages == 1) {
		t.Fatalf("AddPending over max: %v, want nil or a PendingDropped of 1", err)
	}
	if ids := pendingIDs(t, ps, "s"); fmt.Sprint(ids) != "[b c d e]" {
		t.Fatalf("took %v, want the newest 4 [b c d e]", ids)
	}
}

func testPendingExpiry(t *testing.T, st session.Store) {
	ps := pendingStore(t, st)
	if err := ps.AddPending(ctx(t), "short", pendings("a"), 10, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // past the TTL: gone, however late the check
	if ids := pendingIDs(t, ps, "short"); len(ids) != 0 {
		t.Fatalf("pending messages outlived their TTL: %v", ids)
	}
	s := sample()
	mustSave(t, st, s, time.Minute)
	if err := ps.AddPending(ctx(t), s.ID, pendings("a"), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx(t), s.ID); err != nil {
		t.Fatal(err)
	}
	if ids := pendingIDs(t, ps, s.ID); len(ids) != 0 {
		t.Fatalf("pending messages outlived their deleted session: %v", ids)
	}
}

func testResume(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	got, err := st.Resume(ctx(t), s.ID, s.UserID, s.ResumeToken, "next-token")
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	want := *s
	want.ResumeToken = "next-token"
	if !equal(got, &want) {
		t.Fatalf("Resume returned %+v, want %+v", got, &want)
	}
	if stored := mustGet(t, st, s.ID); !equal(stored, &want) {
		t.Fatalf("stored after Resume: %+v, want %+v", stored, &want)
	}
	// The old token worked once.
	if _, err := st.Resume(ctx(t), s.ID, s.UserID, s.ResumeToken, "third"); !errors.Is(err, session.ErrMismatch) {
		t.Fatalf("second Resume with the old token = %v, want ErrMismatch", err)
	}
	if _, err := st.Resume(ctx(t), s.ID, s.UserID, "next-token", "third"); err != nil {
		t.Fatalf("Resume with the new token: %v", err)
	}
}

func testResumeMismatch(t *testing.T, st session.Store) {
	s := sample()
	mustSave(t, st, s, time.Minute)
	for _, try := range []struct{ user, token string }{
		{s.UserID, s.ResumeToken + "x"},
		{s.UserID, ""},
		{"user-2", s.ResumeToken},
	} {
		if _, err := st.Resume(ctx(t), s.ID, try.user, try.token, "stolen"); !errors.Is(err, session.ErrMismatch) {
			t.Fatalf("Resume(user %q, token %q) = %v, want ErrMismatch", try.user, try.token, err)
		}
	}
	if got := mustGet(t, st, s.ID); !equal(got, s) {
		t.Fatalf("refused resumes changed the session: %+v, want %+v", got, s)
	}
}

func testResumeMissing(t *testing.T, st session.Store) {
	if _, err := st.Resume(ctx(t), "s-missing-"+rand.Text()[:8], "user-1", "t", "n"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Resume of a missing session = %v, want ErrNotFound", err)
	}
	s := sample()
	mustSave(t, st, s, 20*time.Millisecond)
	waitGone(t, st, s.ID)
	if _, err := st.Resume(ctx(t), s.ID, s.UserID, s.ResumeToken, "n"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Resume of an expired session = %v, want ErrNotFound", err)
	}
}

// testResumeRace resumes one session with one token from many goroutines
// at once, as clients reconnecting to several nodes with one stolen or
// replayed token would: exactly one may succeed.
func testResumeRace(t *testing.T, st session.Store) {
	const tries = 32
	for round := range 5 {
		s := sample()
		mustSave(t, st, s, time.Minute)
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			mu    sync.Mutex
			won   []string
		)
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				next := fmt.Sprintf("next-%d", i)
				_, err := st.Resume(ctx(t), s.ID, s.UserID, s.ResumeToken, next)
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, next)
					mu.Unlock()
				case !errors.Is(err, session.ErrMismatch):
					t.Errorf("Resume: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d concurrent resumes with one token succeeded (%v), want exactly 1", round, len(won), tries, won)
		}
		if got := mustGet(t, st, s.ID); got.ResumeToken != won[0] {
			t.Fatalf("round %d: stored token %q, want the winner's %q", round, got.ResumeToken, won[0])
		}
	}
}
