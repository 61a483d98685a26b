package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/heraldrt/herald/session"
)

// The single-node default keeps an entry per connection: 96 B is a
// malloc size class, the next one 112 B.
func TestEntryFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(entry{}); size > 96 {
		t.Errorf("entry is %d B: over the 96 B size class", size)
	}
}

// The store's pending messages are bounded in bytes for all sessions
// together: messages that would take it over are refused with
// ErrPendingFull (the caller drops and counts them), and what a session
// gives back (taken, trimmed to max, expired) makes room again.
func TestPendingBounded(t *testing.T) {
	ctx := context.Background()
	st := New(time.Hour)
	defer st.Close()
	st.LimitPending(1000)
	msg := func(id string) session.Pending {
		return session.Pending{MsgID: id, Frame: bytes.Repeat([]byte("x"), 300-len(id))} // 300 B each
	}
	if err := st.AddPending(ctx, "a", []session.Pending{msg("a1"), msg("a2")}, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.AddPending(ctx, "b", []session.Pending{msg("b1"), msg("b2")}, 10, time.Minute); !errors.Is(err, ErrPendingFull) {
		t.Fatalf("1,200 B over a 1,000 B bound: %v, want ErrPendingFull", err)
	}
	// The refused session holds no message, only the record of its loss.
	if got, _ := st.TakePending(ctx, "b"); len(got) != 1 || got[0].Lost != 2 || got[0].Frame != nil {
		t.Fatalf("a refused session holds %+v, want only a record of 2 lost", got)
	}
	if err := st.AddPending(ctx, "b", []session.Pending{msg("b1")}, 10, time.Minute); err != nil {
		t.Fatalf("900 B under the bound: %v", err)
	}
	if n := st.PendingBytes(); n != 900 {
		t.Fatalf("%d bytes held, want 900", n)
	}
	// Taking a session's messages frees their room.
	if got, _ := st.TakePending(ctx, "a"); len(got) != 2 {
		t.Fatalf("took %d messages of a", len(got))
	}
	if n := st.PendingBytes(); n != 300 {
		t.Fatalf("%d bytes held after a's were taken, want 300", n)
	}
	// So does trimming a session to its newest max.
	if err := st.AddPending(ctx, "b", []session.Pending{msg("b2"), msg("b3")}, 2, time.Minute); !errors.As(err, new(*session.PendingDropped)) {
		t.Fatalf("3 messages over a max of 2: %v, want a PendingDropped", err)
	}
	if n := st.PendingBytes(); n != 600 {
		t.Fatalf("%d bytes held with b trimmed to 2 messages, want 600", n)
	}
	// And expiry.
	if err := st.AddPending(ctx, "c", []session.Pending{msg("c1")}, 10, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if err := st.AddPending(ctx, "c", []session.Pending{msg("c2")}, 10, time.Minute); err != nil {
		t.Fatalf("over an expired entry: %v", err)
	}
	if n := st.PendingBytes(); n != 900 {
		t.Fatalf("%d bytes held after c's expired message was replaced, want 900", n)
	}
	// And deleting the session.
	if err := st.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if n := st.PendingBytes(); n != 600 {
		t.Fatalf("%d bytes held after session c was deleted, want 600", n)
	}
}

// TestDeleteConn: a session is deleted, with its pending messages, only
// while it is the given connection's, and not once expired.
func TestDeleteConn(t *testing.T) {
	ctx := context.Background()
	st := New(time.Hour)
	defer st.Close()
	now := time.Now()
	st.now = func() time.Time { return now }
	save := func(id, conn string, ttl time.Duration) {
		t.Helper()
		if err := st.Save(ctx, &session.Session{ID: id, UserID: "u", Conn: conn, ResumeToken: "t"}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	save("s1", "c1", time.Minute)
	if err := st.AddPending(ctx, "s1", []session.Pending{{MsgID: "m", Frame: []byte("f")}}, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.DeleteConn(ctx, "s1", "c2"); ok || err != nil {
		t.Fatalf("another connection's delete: %v, %v", ok, err)
	}
	if _, err := st.Get(ctx, "s1"); err != nil {
		t.Fatalf("session gone after another connection's delete: %v", err)
	}
	if ok, err := st.DeleteConn(ctx, "s1", "c1"); !ok || err != nil {
		t.Fatalf("its connection's delete: %v, %v", ok, err)
	}
	if _, err := st.Get(ctx, "s1"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	if n := st.PendingBytes(); n != 0 {
		t.Fatalf("%d pending bytes kept after the delete", n)
	}
	if ok, _ := st.DeleteConn(ctx, "s1", "c1"); ok {
		t.Fatal("deleted twice")
	}
	save("s2", "c1", time.Second)
	now = now.Add(2 * time.Second)
	if ok, _ := st.DeleteConn(ctx, "s2", "c1"); ok {
		t.Fatal("an expired session reported deleted")
	}
}

// TestPendingLossRecorded: messages the store drops, refused over its
// bound or trimmed to max, leave a record per room that TakePending
// returns first (session.Pending.Lost), so the resuming connection can
// tell its client; past maxLossRooms rooms the records become one for all
// rooms.
func TestPendingLossRecorded(t *testing.T) {
	ctx := context.Background()
	st := New(time.Hour)
	defer st.Close()
	st.LimitPending(1000)
	msg := func(id, room string) session.Pending {
		return session.Pending{MsgID: id, Room: room, Frame: bytes.Repeat([]byte("x"), 100-len(id))} // 100 B each
	}
	if err := st.AddPending(ctx, "s", []session.Pending{msg("a1", "a"), msg("b1", "b"), msg("a2", "a")}, 2, time.Minute); !errors.As(err, new(*session.PendingDropped)) {
		t.Fatalf("3 messages over a max of 2: %v, want a PendingDropped", err)
	}
	big := session.Pending{MsgID: "c1", Room: "c", Frame: bytes.Repeat([]byte("x"), 2000)}
	if err := st.AddPending(ctx, "s", []session.Pending{big}, 2, time.Minute); !errors.Is(err, ErrPendingFull) {
		t.Fatalf("2,000 B over a 1,000 B bound: %v, want ErrPendingFull", err)
	}
	got, err := st.TakePending(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, p := range got {
		if p.Lost > 0 {
			summary = append(summary, fmt.Sprintf("lost %s:%d", p.Room, p.Lost))
		} else {
			summary = append(summary, p.MsgID)
		}
	}
	if want := "[lost a:1 lost c:1 b1 a2]"; fmt.Sprint(summary) != want {
		t.Fatalf("took %v, want %s", summary, want)
	}
	if n := st.PendingBytes(); n != 0 {
		t.Fatalf("%d bytes held after the session's messages were taken", n)
	}

	for i := range maxLossRooms + 1 {
		_ = st.AddPending(ctx, "many", []session.Pending{msg(fmt.Sprint(i), fmt.Sprint("room", i)), msg("x", "")}, 1, time.Minute)
	}
	got, _ = st.TakePending(ctx, "many")
	if len(got) != 2 || got[0].Room != "" || got[0].Lost != 2*(maxLossRooms+1)-1 || got[1].MsgID != "x" {
		t.Fatalf("after %d rooms lost messages: %+v, want one record for all rooms, then the newest message", maxLossRooms+1, got)
	}
}

// What the sessions count follows every change (a save that replaces, a
// resume's new token, deletes, the sweep of expired ones) back to 0; a
// save over the bound forgets other sessions, the one closest to its
// expiry first, never the one saved.
func TestSessionBytesBounded(t *testing.T) {
	ctx := context.Background()
	st := New(time.Hour)
	defer st.Close()
	now := time.Unix(1_000_000, 0)
	st.now = func() time.Time { return now }
	evicted := 0
	rooms := func(n int) []string {
		r := make([]string, n)
		for i := range r {
			r[i] = fmt.Sprintf("room-%04d", i)
		}
		return r
	}
	save := func(id string, n int, ttl time.Duration) {
		t.Helper()
		if err := st.Save(ctx, &session.Session{ID: id, UserID: "u", Conn: "c-" + id, ResumeToken: "tok", Rooms: rooms(n)}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	save("a", 10, time.Minute)
	one := st.SessionBytes()
	if want := int64(sessionOverhead + len("a") + len("u") + len("c-a") + len("tok") + 10*(16+len("room-0000"))); one != want {
		t.Fatalf("one session counts %d B, want %d", one, want)
	}
	save("a", 20, time.Minute) // replaced
	save("b", 20, 2*time.Minute)
	save("c", 20, 3*time.Minute)
	per := st.SessionBytes() / 3
	if _, err := st.Resume(ctx, "b", "u", "tok", "a-longer-token"); err != nil {
		t.Fatal(err)
	}
	if got, want := st.SessionBytes(), 3*per+int64(len("a-longer-token")-len("tok")); got != want {
		t.Fatalf("after the resume: %d B, want %d", got, want)
	}

	// Bound: three sessions of 20 rooms and a bit; a fourth evicts a,
	// the closest to its expiry, and never itself.
	st.LimitSessions(3*per+per/2, func() { evicted++ })
	save("d", 20, 4*time.Minute)
	if evicted != 1 || st.Len() != 3 {
		t.Fatalf("evicted %d, %d sessions left, want 1 and 3", evicted, st.Len())
	}
	if _, err := st.Get(ctx, "a"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a, closest to its expiry, kept: %v", err)
	}
	save("e", 1000, time.Minute) // alone over the bound: kept, the others go
	if st.Len() != 1 {
		t.Fatalf("%d sessions left, want e alone", st.Len())
	}
	if _, err := st.Get(ctx, "e"); err != nil {
		t.Fatal(err)
	}

	if ok, _ := st.DeleteConn(ctx, "e", "c-e"); !ok {
		t.Fatal("DeleteConn")
	}
	save("f", 5, time.Second)
	save("g", 5, time.Minute)
	if err := st.Delete(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	st.mu.Lock()
	for id, e := range st.sessions { // the janitor's sweep
		if now.UnixNano() > e.expires {
			st.deleteLocked(id)
		}
	}
	st.mu.Unlock()
	if n := st.SessionBytes(); n != 0 || st.Len() != 0 {
		t.Fatalf("with no session left the store counts %d B (%d sessions)", n, st.Len())
	}
}
