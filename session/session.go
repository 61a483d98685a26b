// Package session defines the SessionStore seam: where a connection's
// session (who, which node, which rooms, when last seen) is kept so that a
// client reconnecting to any node can resume it. session/memory is the
// single-node default; a Redis store implements the same interface for
// clusters.
//
// Sessions carry a TTL that the owning node refreshes while the connection
// lives; a crashed node's sessions therefore expire on their own.
package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned by Get for a missing or expired session.
var ErrNotFound = errors.New("session: not found")

// ErrMismatch is returned by Resume when the resume token or the user
// does not match the session's.
var ErrMismatch = errors.New("session: resume token or user does not match")

// Session is the resumable state of one connection.
type Session struct {
	ID     string `json:"id"`
	UserID string `json:"user"`
	Node   string `json:"node"`
	// Conn is the id of the connection that holds the session now; a resume
	// moves it, so the previous connection's late cleanup leaves it alone.
	Conn string `json:"conn"`
	// ResumeToken must accompany the session id to resume it; it changes
	// on every resume.
	ResumeToken string    `json:"resumeToken"`
	Rooms       []string  `json:"rooms"`
	ConnectedAt time.Time `json:"connectedAt"`
	LastSeen    time.Time `json:"lastSeen"`
}

// Store keeps sessions. Implementations are safe for concurrent use.
type Store interface {
	// Save creates or replaces s, expiring after ttl. It must not keep s,
	// which the caller reuses; it may keep s.Rooms, which the caller does
	// not modify once saved.
	Save(ctx context.Context, s *Session, ttl time.Duration) error
	// Get returns a copy of the session or ErrNotFound.
	Get(ctx context.Context, id string) (*Session, error)
	// Touch records lastSeen and extends the TTL; ErrNotFound if it expired.
	Touch(ctx context.Context, id string, lastSeen time.Time, ttl time.Duration) error
	// Resume claims session id for a reconnecting client of user that
	// presents token: when the session exists and its resume token and user
	// match, it replaces the token with next and returns a copy of the
	// session with next as its token. The check and the swap are one atomic
	// step, so that of several resumes with one token exactly one succeeds.
	// ErrNotFound for a missing or expired session, ErrMismatch for a wrong
	// token or user (the session is left as it was).
	Resume(ctx context.Context, id, user, token, next string) (*Session, error)
	// Delete removes the session (a clean disconnect). Missing is not an error.
	Delete(ctx context.Context, id string) error
	// Close releases resources and stops background work.
	Close() error
}

// PresenceEntry is one user present in a room and how many connections
// they have in it across all nodes.
type PresenceEntry struct {
	User        string `json:"user"`
	Connections int    `json:"connections"`
}

// Presence records which connections are in which rooms on which node, so
// that any node can list a room's users. Nodes hold liveness leases: the
// entries of a node whose lease lapsed (it crashed) are not listed.
type Presence interface {
	// Add records connection conn of user in room on node.
	Add(ctx context.Context, room, node, conn, user string) error
	// Remove forgets connection conn in room on node.
	Remove(ctx context.Context, room, node, conn string) error
	// List returns the users present in room on live nodes, sorted by user.
	List(ctx context.Context, room string) ([]PresenceEntry, error)
	// KeepAlive renews node's lease for ttl; call it well within ttl.
	KeepAlive(ctx context.Context, node string, ttl time.Duration) error
	// Close releases resources.
	Close() error
}

// Opener is implemented by a Presence kept in the same backend as a
// session Store (the Redis Presence made by its Store's Presence method):
// it writes what a connection that opens, resumes or joins needs in one
// round trip instead of one per session save, presence entry and pending
// read. A server uses it only when OpenStore is the Store it saves
// sessions in.
type Opener interface {
	// Open is Save(ctx, s, ttl) on OpenStore and Add(ctx, room, node,
	// s.Conn, s.UserID) for each of rooms, together. Like Save, Open and
	// Reopen must not keep s.
	Open(ctx context.Context, s *Session, ttl time.Duration, rooms []string, node string) error
	// Reopen is Open for a session that a Resume just claimed for
	// connection s.Conn, and also TakePending of the session: the take
	// comes after the save has made s.Conn the session's connection (see
	// PendingStore), so that messages carried by the session's previous
	// connection are found either here or by that connection's node.
	Reopen(ctx context.Context, s *Session, ttl time.Duration, rooms []string, node string) ([]Pending, error)
	// OpenStore is the Store Open saves into.
	OpenStore() Store
}

// ConnDeleter is implemented by stores that delete a session only while
// a given connection holds it, in one step: the server ends the session
// of a client that closed cleanly with it when the store has it, and
// otherwise reads the session (Get) and deletes it (Delete), which a
// resume on another node can come between. The memory store implements
// it.
type ConnDeleter interface {
	// DeleteConn deletes session id, with its pending messages, if it
	// exists and its Conn is conn, and reports whether it did.
	DeleteConn(ctx context.Context, id, conn string) (bool, error)
}

// Pending is an acknowledged-delivery message (published with ack) that a
// session's connection had not acknowledged when it ended: the event
// frame as it was sent, by its msgId.
type Pending struct {
	MsgID string `json:"id"`
	Frame []byte `json:"frame,omitempty"`
	// Room is the room (or user room) the message was published to, so
	// that a store that drops the message to stay within its bounds can
	// say which room lost it (Lost). Stores that never drop may ignore it.
	Room string `json:"room,omitempty"`
	// Lost, when positive, makes this entry no message but the record,
	// returned by TakePending among the messages, that the store dropped
	// Lost pending messages of Room (of any of the session's rooms when
	// Room is empty) to stay within its bounds: the connection that takes
	// it cannot be given them and tells its client (a gap frame).
	Lost int `json:"lost,omitempty"`
}

// ErrPendingDropped is wrapped by the error of AddPending when the store
// kept the session's newest messages but dropped others (older ones of
// the session, or some of those added) to stay within its bounds; see
// PendingDropped.
var ErrPendingDropped = errors.New("session: pending messages dropped over the store's bounds")

// PendingDropped is the error of an AddPending that stored the newest
// messages but dropped Messages others; TakePending reports them (Lost).
type PendingDropped struct {
	Messages int
}

func (e *PendingDropped) Error() string {
	return fmt.Sprintf("%v: %d", ErrPendingDropped, e.Messages)
}

// Unwrap returns ErrPendingDropped.
func (e *PendingDropped) Unwrap() error { return ErrPendingDropped }

// PendingStore is implemented by stores that keep a session's pending
// messages across a reconnect, so that the node the client resumes on,
// whichever it is, can redeliver them. The built-in stores implement it.
type PendingStore interface {
	// AddPending appends msgs to the pending messages of session id,
	// keeping the newest max of them, and makes them expire after ttl.
	// A store bounded in bytes may keep fewer: then it returns a
	// *PendingDropped, the rest being stored.
	AddPending(ctx context.Context, id string, msgs []Pending, max int, ttl time.Duration) error
	// TakePending returns the pending messages of session id, oldest
	// first, and removes them; none is not an error.
	TakePending(ctx context.Context, id string) ([]Pending, error)
}

// Revocation is a revoked token (TokenID, its jti) or user (User, its
// sub: the user's tokens issued at or before At), remembered until Until.
type Revocation struct {
	TokenID string
	User    string
	At      time.Time // for User; whole seconds
	Until   time.Time // whole seconds
}

// Revocations keeps revocations where every node, and a node that starts,
// can read them: a restarted node must not accept a token revoked before
// it started. Implementations are safe for concurrent use.
type Revocations interface {
	// Add records r until r.Until. A later revocation of the same jti or
	// user replaces the earlier one.
	Add(ctx context.Context, r Revocation) error
	// List returns every revocation whose Until has not passed.
	List(ctx context.Context) ([]Revocation, error)
	// Close releases resources.
	Close() error
}
