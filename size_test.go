package herald

import (
	"testing"
	"time"
	"unsafe"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
)

// Every idle connection holds a conn next to its transport.Conn (see
// transport's TestConnFitsSizeClass): 256 B is a malloc size class, the
// next one 288 B.
func TestConnFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(conn{}); size > 256 {
		t.Errorf("conn is %d B: over the 256 B size class (each idle connection would cost 288 B)", size)
	}
}

// Every idle Socket.IO connection holds a sioClient with its socket's
// link inline (and its context: the client is one), the adapter's Client
// (with its first Socket) and the Engine.IO session (see its size test)
// inline too. The link holds neither its namespace's codec
// (sioServer.codec) nor a last-seen time (the Engine.IO session's), and
// how it ends (its error and Done's channel) is apart, made when it ends
// or is waited for: 256 B is a malloc size class, the next one 288 B.
func TestSocketIOClientFitsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(sioClient{}); size > 256 {
		t.Errorf("sioClient is %d B: over the 256 B size class (each idle Socket.IO connection would cost 288 B)", size)
	}
}

// A connection that has sent frames keeps its message bucket inside conn:
// nothing is allocated for it, with the default cap on.
func TestMessageBucketAllocatesNothing(t *testing.T) {
	c := &conn{s: &Server{cfg: Config{MessageRate: 1e9}}}
	if n := testing.AllocsPerRun(100, func() { c.allowMessage() }); n != 0 {
		t.Errorf("allowMessage allocates %v times per frame", n)
	}
}

// The message bucket lets a burst through at once, then the rate, and
// counts refusals for the abuse close.
func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	const rate, burst = 10, 3 // a token every 100 ms
	now := int64(1)
	for i := range burst {
		if !b.take(now, rate, burst) {
			t.Fatalf("burst frame %d refused", i)
		}
	}
	if b.take(now, rate, burst) {
		t.Fatal("frame past the burst allowed")
	}
	now += int64(50 * time.Millisecond)
	if b.take(now, rate, burst) {
		t.Fatal("allowed half a token after the last refusal")
	}
	now += int64(60 * time.Millisecond)
	if !b.take(now, rate, burst) {
		t.Fatal("refused after a whole token came back")
	}
	now += int64(time.Hour)
	for i := range burst {
		if !b.take(now, rate, burst) {
			t.Fatalf("after an hour: frame %d refused", i)
		}
	}
	if b.take(now, rate, burst) {
		t.Fatal("the bucket held more than its burst")
	}

	c := &conn{s: &Server{cfg: Config{MessageRate: 1, MessageBurst: 2}}}
	var abusive int
	for i := range 6 {
		ok, abuse := c.allowMessage()
		if ok != (i < 2) {
			t.Fatalf("frame %d: allowed %v", i, ok)
		}
		if abuse {
			abusive = i
			break
		}
	}
	if abusive != 4 { // two allowed, then the third refusal is past a burst of 2
		t.Fatalf("abuse at frame %d, want 4", abusive)
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
