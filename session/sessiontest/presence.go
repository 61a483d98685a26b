package sessiontest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/session"
)

// RunPresence runs the presence conformance table against an engine.
// leases says whether the engine expires a node's entries when its lease
// lapses (cluster engines); the memory engine has no leases.
func RunPresence(t *testing.T, newPresence func(t *testing.T) session.Presence, leases bool) {
	t.Run("add list remove", func(t *testing.T) {
		p := newPresence(t)
		room := fmt.Sprintf("room-%d", rand.Int64())
		for _, n := range []string{"node-a", "node-b"} {
			if err := p.KeepAlive(ctx(t), n, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		mustDo(t, p.Add(ctx(t), room, "node-a", "c1", "alice"))
		mustDo(t, p.Add(ctx(t), room, "node-b", "c2", "alice"))
		mustDo(t, p.Add(ctx(t), room, "node-b", "c3", "bob"))
		mustDo(t, p.Add(ctx(t), room, "node-b", "c3", "bob")) // idempotent
		want := []session.PresenceEntry{{User: "alice", Connections: 2}, {User: "bob", Connections: 1}}
		if got := mustList(t, p, room); !slices.Equal(got, want) {
			t.Fatalf("list = %v, want %v", got, want)
		}
		mustDo(t, p.Remove(ctx(t), room, "node-a", "c1"))
		mustDo(t, p.Remove(ctx(t), room, "node-b", "c3"))
		mustDo(t, p.Remove(ctx(t), room, "node-b", "nope"))
		want = []session.PresenceEntry{{User: "alice", Connections: 1}}
		if got := mustList(t, p, room); !slices.Equal(got, want) {
			t.Fatalf("after remove: %v, want %v", got, want)
		}
		if got := mustList(t, p, room+"-empty"); len(got) != 0 {
			t.Fatalf("empty room: %v", got)
		}
	})
	t.Run("rooms growing and shrinking", func(t *testing.T) {
		// Engines may keep small and large rooms differently: go across
		// any such size in both directions.
		p := newPresence(t)
		room := fmt.Sprintf("room-%d", rand.Int64())
		mustDo(t, p.KeepAlive(ctx(t), "node-a", time.Minute))
		users := []string{"ann", "ben", "cy"}
		const n = 40
		for i := range n {
			mustDo(t, p.Add(ctx(t), room, "node-a", fmt.Sprint("c", i), users[i%3]))
		}
		want := []session.PresenceEntry{{User: "ann", Connections: 14}, {User: "ben", Connections: 13}, {User: "cy", Connections: 13}}
		if got := mustList(t, p, room); !slices.Equal(got, want) {
			t.Fatalf("%d connections: %v, want %v", n, got, want)
		}
		for i := range n - 2 {
			mustDo(t, p.Remove(ctx(t), room, "node-a", fmt.Sprint("c", i)))
		}
		want = []session.PresenceEntry{{User: "ann", Connections: 1}, {User: "cy", Connections: 1}}
		if got := mustList(t, p, room); !slices.Equal(got, want) {
			t.Fatalf("2 left: %v, want %v", got, want)
		}
		mustDo(t, p.Add(ctx(t), room, "node-a", "c0", "ann"))
		mustDo(t, p.Remove(ctx(t), room, "node-a", fmt.Sprint("c", n-2)))
		mustDo(t, p.Remove(ctx(t), room, "node-a", fmt.Sprint("c", n-1)))
		want = []session.PresenceEntry{{User: "ann", Connections: 1}}
		if got := mustList(t, p, room); !slices.Equal(got, want) {
			t.Fatalf("after regrowing: %v, want %v", got, want)
		}
		mustDo(t, p.Remove(ctx(t), room, "node-a", "c0"))
		if got := mustList(t, p, room); len(got) != 0 {
			t.Fatalf("emptied room: %v", got)
		}
	})
	if !leases {
		return
	}
	t.Run("dead node's entries disappear", func(t *testing.T) {
		p := newPresence(t)
		room := fmt.Sprintf("room-%d", rand.Int64())
		mustDo(t, p.KeepAlive(ctx(t), "live", time.Minute))
		mustDo(t, p.KeepAlive(ctx(t), "doomed", 300*time.Millisecond))
		mustDo(t, p.Add(ctx(t), room, "live", "c1", "alice"))
		mustDo(t, p.Add(ctx(t), room, "doomed", "c2", "bob"))
		if got := mustList(t, p, room); len(got) != 2 {
			t.Fatalf("before expiry: %v", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := mustList(t, p, room)
			if slices.Equal(got, []session.PresenceEntry{{User: "alice", Connections: 1}}) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("dead node still listed: %v", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustList(t *testing.T, p session.Presence, room string) []session.PresenceEntry {
	t.Helper()
	got, err := p.List(ctx(t), room)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
