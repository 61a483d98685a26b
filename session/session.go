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
	"time"
)

// ErrNotFound is returned by Get for a missing or expired session.
var ErrNotFound = errors.New("session: not found")

// Session is the resumable state of one connection.
type Session struct {
	ID          string    `json:"id"`
	UserID      string    `json:"user"`
	Node        string    `json:"node"`
	Rooms       []string  `json:"rooms"`
	ConnectedAt time.Time `json:"connectedAt"`
	LastSeen    time.Time `json:"lastSeen"`
}

// Store keeps sessions. Implementations are safe for concurrent use.
type Store interface {
	// Save creates or replaces s, expiring after ttl.
	Save(ctx context.Context, s *Session, ttl time.Duration) error
	// Get returns a copy of the session or ErrNotFound.
	Get(ctx context.Context, id string) (*Session, error)
	// Touch records lastSeen and extends the TTL; ErrNotFound if it expired.
	Touch(ctx context.Context, id string, lastSeen time.Time, ttl time.Duration) error
	// Delete removes the session (a clean disconnect). Missing is not an error.
	Delete(ctx context.Context, id string) error
	// Close releases resources and stops background work.
	Close() error
}
