package herald_test

import (
	"context"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// Revoking a token or a user and disconnecting a user find their
// connections through the connection index: a refresh moves a connection
// to its new jti, several connections may share a user or a token, and
// nobody else is touched. Once every client has gone the index is empty.
func TestRevokeAndDisconnectFindConnectionsByIndex(t *testing.T) {
	t.Parallel()
	ts, _, _ := authServer(t, herald.Config{}, jwtauth.Config{})
	tok := func(sub, jti string) string {
		return sign(t, gojwt.SigningMethodHS256, testSecret, with(claims(sub, time.Hour), "jti", jti))
	}
	bearerOf := func(s string) dialOpt { return withHeader("Authorization", "Bearer "+s) }
	shared1 := dial(t, ts.URL, bearerOf(tok("alice", "a1"))) // two connections of one token
	shared2 := dial(t, ts.URL, bearerOf(tok("alice", "a1")))
	refreshed := dial(t, ts.URL, bearerOf(tok("alice", "a0")))
	bob := dial(t, ts.URL, bearerOf(tok("bob", "b1")))
	carol := dial(t, ts.URL, bearerOf(tok("carol", "c1")))
	if m := refreshed.request(map[string]any{"type": "refresh", "id": 1, "token": tok("alice", "a2")}); m["type"] != "reply" {
		t.Fatalf("refresh: %v", m)
	}
	waitFor(t, 5*time.Second, "five indexed connections", func() bool {
		u, k := ts.IndexedConns()
		return u == 5 && k == 5
	})

	ctx := context.Background()
	revokeOK := func(req herald.RevokeRequest) {
		t.Helper()
		if err := ts.Revoke(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	stillOpen := func(cs ...*wsClient) {
		t.Helper()
		for _, c := range cs {
			c.join("chat:still-here")
		}
	}
	closedWith := func(code int, cs ...*wsClient) {
		t.Helper()
		for _, c := range cs {
			if got, reason := c.closeStatus(5 * time.Second); int(got) != code {
				t.Fatalf("closed with %d %q, want %d", got, reason, code)
			}
		}
	}

	// The refreshed connection no longer holds a0: revoking it closes nothing.
	revokeOK(herald.RevokeRequest{TokenID: "a0"})
	stillOpen(shared1, shared2, refreshed, bob, carol)
	// It holds a2.
	revokeOK(herald.RevokeRequest{TokenID: "a2"})
	closedWith(4003, refreshed)
	stillOpen(shared1, shared2, bob, carol)
	// Both connections of a1.
	if err := ts.DisconnectUser(ctx, "alice", "bye"); err != nil {
		t.Fatal(err)
	}
	closedWith(4004, shared1, shared2)
	stillOpen(bob, carol)
	// A user's tokens.
	revokeOK(herald.RevokeRequest{User: "bob"})
	closedWith(4003, bob)
	stillOpen(carol)
	// A token and a user at once: the connection in both lists is closed once.
	revokeOK(herald.RevokeRequest{User: "carol", TokenID: "c1"})
	closedWith(4003, carol)

	waitFor(t, 5*time.Second, "an empty index", func() bool {
		u, k := ts.IndexedConns()
		return u == 0 && k == 0
	})
}
