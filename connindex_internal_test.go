package herald

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
)

func TestKeyIndex(t *testing.T) {
	t.Parallel()
	a, b, c := &conn{}, &conn{}, &conn{}
	tests := []struct {
		name   string
		add    []*conn
		remove []*conn
		want   []*conn
	}{
		{"empty", nil, nil, nil},
		{"one", []*conn{a}, nil, []*conn{a}},
		{"one removed", []*conn{a}, []*conn{a}, nil},
		{"three", []*conn{a, b, c}, nil, []*conn{a, b, c}},
		{"three, middle removed", []*conn{a, b, c}, []*conn{b}, []*conn{a, c}},
		{"two, back to one", []*conn{a, b}, []*conn{a}, []*conn{b}},
		{"all removed", []*conn{a, b, c}, []*conn{c, a, b}, nil},
		{"absent removed", []*conn{a}, []*conn{b}, []*conn{a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var x keyIndex
			for _, cn := range tt.add {
				x.add("k", cn)
			}
			x.add("other", &conn{})
			for _, cn := range tt.remove {
				x.remove("k", cn)
			}
			got := x.appendTo(nil, "k")
			ptrs := func(cs []*conn) []string {
				var s []string
				for _, cn := range cs {
					s = append(s, fmt.Sprintf("%p", cn))
				}
				slices.Sort(s)
				return s
			}
			if !slices.Equal(ptrs(got), ptrs(tt.want)) {
				t.Fatalf("got %d connections %v, want %d %v", len(got), ptrs(got), len(tt.want), ptrs(tt.want))
			}
			if x.len() != len(tt.want)+1 {
				t.Fatalf("len %d, want %d", x.len(), len(tt.want)+1)
			}
			if len(tt.want) < 2 && x.many["k"] != nil {
				t.Fatal("a key of fewer than two connections kept its slice")
			}
		})
	}
}

// indexServer returns a Server holding n connections of n distinct users
// (user-0 …), each with a token (jti-0 …), as addConn leaves them.
func indexServer(n int) *Server {
	s := &Server{conns: map[*conn]struct{}{}, revoked: newRevocations()}
	for i := range n {
		id := &auth.Identity{UserID: fmt.Sprintf("user-%d", i), TokenID: fmt.Sprintf("jti-%d", i), IssuedAt: time.Unix(1, 0)}
		c := &conn{s: s, ident: id, info: ConnInfo{UserID: id.UserID}}
		s.addConn(c)
	}
	return s
}

// The index's memory per idle connection: a plain anonymous connection
// (a user id, no jti) adds one entry to a map of string to pointer, whose
// key is the connection's own string. The bound is generous (swiss
// tables at their lowest load after growing); the figure is logged.
func TestConnIndexBytesPerConn(t *testing.T) {
	const n = 100_000
	cs := make([]*conn, n)
	for i := range cs {
		cs[i] = &conn{info: ConnInfo{UserID: fmt.Sprintf("anon-%010d", i)}}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var x connIndex
	for _, c := range cs {
		x.add(c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("connection index: %.1f B per connection without a jti (%d connections)", per, n)
	if per > 64 {
		t.Errorf("the index costs %.1f B per connection, over 64 B", per)
	}
	runtime.KeepAlive(x)
}

// BenchmarkFindUserConns compares finding the connections of one user (or
// one revoked token) among 100,000 by scanning every connection, as
// DisconnectUser and revocations did before connindex.go, with the index.
// The scan for a revocation checked each connection's credential
// (revokedAt); the one for DisconnectUser compared user ids.
func BenchmarkFindUserConns(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		s := indexServer(n)
		s.revoked.add(&broker.Control{Kind: broker.ControlRevoke, TokenID: "jti-77", Until: time.Now().Add(time.Hour).Unix()}, time.Now())
		b.Run(fmt.Sprintf("disconnect/scan/conns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				found := 0
				for _, c := range s.snapshot() {
					if c.info.UserID == "user-77" {
						found++
					}
				}
				if found != 1 {
					b.Fatal(found)
				}
			}
		})
		b.Run(fmt.Sprintf("disconnect/index/conns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if found := len(s.connsOf("user-77", "")); found != 1 {
					b.Fatal(found)
				}
			}
		})
		b.Run(fmt.Sprintf("revoke/scan/conns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				found := 0
				for _, c := range s.snapshot() {
					if c.revokedAt(now) {
						found++
					}
				}
				if found != 1 {
					b.Fatal(found)
				}
			}
		})
		b.Run(fmt.Sprintf("revoke/index/conns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				found := 0
				for _, c := range s.connsOf("", "jti-77") {
					if c.revokedAt(now) {
						found++
					}
				}
				if found != 1 {
					b.Fatal(found)
				}
			}
		})
	}
}

// endedLink is a link whose connection has ended (or not: err nil).
type endedLink struct {
	link
	err error
}

func (l endedLink) Err() error { return l.err }

// sessionConn finds a session's live connection among its user's
// connections, whichever key shape (one connection or several) the user
// has, and never a connection of the session that has ended.
func TestSessionConnFindsTheSessionAmongTheUsers(t *testing.T) {
	t.Parallel()
	s := indexServer(1000)
	mk := func(user, sid string, err error) *conn {
		c := &conn{s: s, info: ConnInfo{UserID: user, SessionID: sid}, link: endedLink{err: err}}
		if sid != "" {
			c.flags.Store(flagSession)
		}
		s.addConn(c)
		return c
	}
	alone := mk("alone", "s-alone", nil)
	mk("many", "s-other", nil)
	mk("many", "", nil) // still opening its session
	ended := mk("many", "s-many", errDrainTerminated)
	live := mk("many", "s-many", nil)
	mk("gone", "s-gone", errDrainTerminated)

	tests := []struct {
		name, sid, user string
		want            *conn
	}{
		{"only connection of its user", "s-alone", "alone", alone},
		{"among several, past the ended one", "s-many", "many", live},
		{"ended only", "s-gone", "gone", nil},
		{"named with another user", "s-alone", "many", nil},
		{"unknown session", "s-none", "many", nil},
		{"unknown user", "s-alone", "nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.connsMu.Lock()
			got := s.sessionConn(tt.sid, tt.user)
			s.connsMu.Unlock()
			if got != tt.want {
				t.Fatalf("sessionConn(%q, %q) = %p, want %p", tt.sid, tt.user, got, tt.want)
			}
		})
	}
	s.removeConn(live)
	s.connsMu.Lock()
	got := s.sessionConn("s-many", "many")
	s.connsMu.Unlock()
	if got != nil {
		t.Fatalf("found a removed connection (%p; the ended one is %p)", got, ended)
	}
}
