// Package auth defines the Authenticator seam: who a connecting client is,
// decided on the HTTP upgrade request before any WebSocket exists, and what
// that identity may do (join and publish to rooms).
//
// Anonymous is the default Authenticator: it trusts the X-Client-Id header
// (or clientId query parameter) or makes up an id. It is meant for a server
// bound to loopback or for development; token-based authenticators implement
// the same interface.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/internal/query"
	"github.com/heraldrt/herald/protocol"
)

// UserRoomPrefix prefixes the room every connection of a user is in. It
// is the broker's: engines deliver these rooms to every node without a
// subscription per room.
const UserRoomPrefix = protocol.UserRoomPrefix

// UserRoom returns the direct-delivery room of user id.
func UserRoom(id string) string { return UserRoomPrefix + id }

// Error is an authentication failure. Status is the HTTP status to answer
// with (401 unless set); Reason is a short machine-readable word for logs
// and metrics; Message is safe to show the client.
type Error struct {
	Status  int
	Reason  string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("auth: %s: %s", e.Reason, e.Message) }

// Identity is an authenticated (or anonymous) client.
type Identity struct {
	// UserID is the user the connection acts as; never empty.
	UserID    string
	Anonymous bool
	// TokenID is the token's jti and IssuedAt its iat; ExpiresAt is when
	// the credential stops being accepted (for a JWT, exp plus the
	// clock-skew leeway). All zero for anonymous.
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Source says where the credential came from: "cookie", "header",
	// "subprotocol" or "query" ("" when anonymous). Cookie credentials are
	// sent by browsers on cross-site requests too, so the server refuses
	// cross-origin upgrades that carry them.
	Source string
	// Permissions decides room access; nil means DefaultPermissions.
	Permissions Permissions
}

// Permissions decides what an identity may do with rooms.
type Permissions interface {
	CanJoin(room string) bool
	CanPublish(room string) bool
}

// CanJoin reports whether the identity may join room. Another user's
// "user:" room is always refused.
func (id *Identity) CanJoin(room string) bool {
	if isOtherUserRoom(id.UserID, room) {
		return false
	}
	if id.Permissions != nil {
		return id.Permissions.CanJoin(room)
	}
	return true
}

// CanPublish reports whether the identity may publish to room.
func (id *Identity) CanPublish(room string) bool {
	if isOtherUserRoom(id.UserID, room) {
		return false
	}
	if id.Permissions != nil {
		return id.Permissions.CanPublish(room)
	}
	return true
}

func isOtherUserRoom(user, room string) bool {
	return protocol.IsUserRoom(room) && !protocol.IsUserRoomOf(room, user)
}

// Authenticator decides on the upgrade request who the client is. An error
// that is an *Error is answered with its status; any other error with 401.
type Authenticator interface {
	Authenticate(r *http.Request) (*Identity, error)
}

// Refresher is implemented by authenticators whose credentials expire: it
// verifies a new token sent on a live connection (the refresh request).
type Refresher interface {
	Refresh(token string) (*Identity, error)
}

// Anonymous accepts every client. herald.Server serves it to clients that
// connect over loopback only, unless told otherwise (Config.InsecureNoAuth).
type Anonymous struct{}

// IsAnonymous reports whether a is Anonymous (or nil, which means it):
// every client is let in under the id it claims.
func IsAnonymous(a Authenticator) bool {
	switch a.(type) {
	case nil, Anonymous, *Anonymous:
		return true
	}
	return false
}

// MaxClientIDLen bounds the client-chosen anonymous id.
const MaxClientIDLen = 128

// ErrBadClientID is the cause of a rejected X-Client-Id.
var ErrBadClientID = errors.New("auth: invalid client id")

// Authenticate implements Authenticator. The id comes from X-Client-Id, else
// the clientId query parameter (browsers cannot set headers on WebSocket),
// else a random one. Ids are 1-128 characters of [A-Za-z0-9._:@-].
func (Anonymous) Authenticate(r *http.Request) (*Identity, error) {
	cid := r.Header.Get("X-Client-Id")
	if cid == "" {
		cid = query.Get(r.URL.RawQuery, "clientId")
	}
	if cid == "" {
		return &Identity{UserID: "anon-" + id.New(10), Anonymous: true}, nil
	}
	if !ValidClientID(cid) {
		return nil, &Error{Status: http.StatusBadRequest, Reason: "bad_client_id",
			Message: "the client id (X-Client-Id header or clientId query parameter) must be 1-128 characters of A-Z a-z 0-9 . _ : @ -"}
	}
	return &Identity{UserID: cid, Anonymous: true}, nil
}

// ValidClientID reports whether id is an acceptable anonymous client id.
func ValidClientID(s string) bool {
	if s == "" || len(s) > MaxClientIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}
