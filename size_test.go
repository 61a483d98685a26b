package herald

import (
	"testing"
	"time"
	"unsafe"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
)

// Every idle connection holds a conn next to its transport.Conn (see
// transport's TestConnFitsSizeClass): 288 B is a malloc size class, the
// next one 320 B.
func TestConnFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(conn{}); size > 288 {
		t.Errorf("conn is %d B: over the 288 B size class (each idle connection would cost 320 B)", size)
	}
}

// A plain anonymous connection keeps no auth.Identity (128 B): its user
// id is all there is, and the permission checks rebuild the rest.
func TestAnonymousConnectionKeepsNoIdentity(t *testing.T) {
	plain := &auth.Identity{UserID: "alice", Anonymous: true}
	if keptIdentity(plain) != nil {
		t.Error("a plain anonymous identity was kept")
	}
	for name, id := range map[string]*auth.Identity{
		"token":                      {UserID: "alice", TokenID: "t1"},
		"anonymous with permissions": {UserID: "alice", Anonymous: true, Permissions: denyAll{}},
		"anonymous with a source":    {UserID: "alice", Anonymous: true, Source: "query"},
		"anonymous with an expiry":   {UserID: "alice", Anonymous: true, ExpiresAt: time.Now().Add(time.Hour)},
	} {
		if keptIdentity(id) != id {
			t.Errorf("%s: identity not kept", name)
		}
	}

	c := &conn{s: &Server{revoked: newRevocations()}, ident: keptIdentity(plain), info: ConnInfo{UserID: "alice"}}
	for room, want := range map[string]bool{"news": true, "user:alice": true, "user:bob": false} {
		if got := c.canJoin(room); got != want {
			t.Errorf("canJoin(%q) = %v, want %v", room, got, want)
		}
		if got := c.canPublish(room); got != want {
			t.Errorf("canPublish(%q) = %v, want %v", room, got, want)
		}
	}
	if id := c.identity(); id.UserID != "alice" || !id.Anonymous {
		t.Errorf("identity() = %+v, want anonymous alice", id)
	}
	if c.revokedAt(time.Now()) {
		t.Error("revoked without a revocation")
	}
	c.s.revoked.add(&broker.Control{Kind: broker.ControlRevoke, User: "alice", Until: time.Now().Add(time.Hour).Unix()}, time.Now())
	if !c.revokedAt(time.Now()) {
		t.Error("not revoked after its user was")
	}
}

type denyAll struct{}

func (denyAll) CanJoin(string) bool    { return false }
func (denyAll) CanPublish(string) bool { return false }
