package admin

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
)

// Node is what the console needs from the Herald server it runs in.
// Methods named Local* see this node only; the others act on the cluster
// through the engine, as the server's own API does.
type Node interface {
	// ID is the node's id (Config.NodeID).
	ID() string
	// LocalStats describes this node now.
	LocalStats(ctx context.Context) NodeStats
	// LocalConns returns up to limit of this node's connections that match q.
	LocalConns(q ConnQuery, limit int) []ConnInfo
	// LocalRooms returns up to limit rooms with members on this node whose
	// name starts with prefix.
	LocalRooms(prefix string, limit int) []RoomInfo
	// LocalMembers returns room's members on this node, by user.
	LocalMembers(room string, limit int) []MemberInfo
	// LocalDisconnect closes this node's connection id, if it has it.
	LocalDisconnect(id, reason string) bool
	// Drain starts this node's graceful shutdown and returns at once.
	Drain()

	// Control sends c to every node (broker.Broker.PublishControl).
	Control(ctx context.Context, c *broker.Control) error
	// Publish publishes to room (or a user room) from the server, with cid
	// as its correlation id; it returns the message id.
	Publish(ctx context.Context, room, event string, data json.RawMessage, cid string) (string, error)
	// DisconnectUser closes every connection of user on every node.
	DisconnectUser(ctx context.Context, user, reason string) error
	// Revoke revokes a token (jti) and/or a user (sub) on every node.
	Revoke(ctx context.Context, jti, sub, reason string) error
	// Presence lists room's members across the cluster as the presence
	// registry knows them.
	Presence(ctx context.Context, room string) ([]PresenceEntry, error)
	// History returns up to limit of room's last messages, oldest first;
	// ErrNoHistory when the room keeps none.
	History(ctx context.Context, room string, limit int) ([]*broker.Message, error)
	// Tail adds m as a local member of room (a user room for a user), so
	// that it receives what is published there from any node; leave
	// removes it.
	Tail(ctx context.Context, room string, m hub.Member) (leave func(), err error)
}

// ErrNoHistory is returned by Node.History for a room without history.
var ErrNoHistory = errors.New("admin: history not enabled")

// NodeStats is one node's state as the overview shows it. Counters are
// totals since the node started; the console turns them into rates.
type NodeStats struct {
	Node        string    `json:"node"`
	Version     string    `json:"version"`
	StartedAt   time.Time `json:"startedAt"`
	UptimeSec   float64   `json:"uptimeSec"`
	Connections int       `json:"connections"`
	Rooms       int       `json:"rooms"`
	Draining    bool      `json:"draining"`
	Broker      string    `json:"broker"` // "up" or "down: <why>"
	Console     bool      `json:"console"`

	HeapBytes   uint64  `json:"heapBytes"`
	SysBytes    uint64  `json:"sysBytes"`
	Goroutines  int     `json:"goroutines"`
	NumGC       uint32  `json:"numGC"`
	GCPauseMs   float64 `json:"gcPauseMs"`   // last pause
	GCCPUFrac   float64 `json:"gcCPUFrac"`   // share of CPU spent in GC since start
	MessagesIn  float64 `json:"messagesIn"`  // client frames received
	MessagesOut float64 `json:"messagesOut"` // frames queued to clients
	// Disconnects counts closed connections by reason (the labels of
	// herald_connections_closed_total).
	Disconnects map[string]float64 `json:"disconnects"`
}

// ConnQuery selects connections: every non-empty field must match.
type ConnQuery struct {
	User          string `json:"user,omitempty"`
	ID            string `json:"conn,omitempty"`
	CorrelationID string `json:"cid,omitempty"`
	Room          string `json:"room,omitempty"`
}

func (q ConnQuery) empty() bool { return q == ConnQuery{} }

// ConnInfo describes one connection.
type ConnInfo struct {
	Node          string    `json:"node"`
	ID            string    `json:"id"`
	User          string    `json:"user"`
	CorrelationID string    `json:"cid"`
	SessionID     string    `json:"sessionId,omitempty"`
	RemoteAddr    string    `json:"remoteAddr"`
	Rooms         []string  `json:"rooms"`
	ConnectedAt   time.Time `json:"connectedAt"`
	LastSeen      time.Time `json:"lastSeen"`
	Protocol      string    `json:"protocol"`
	Compressed    bool      `json:"compressed"`
	PendingAcks   int       `json:"pendingAcks"`
	Queued        int       `json:"queued"`
}

// RoomInfo is a room with its member count on one node.
type RoomInfo struct {
	Room    string `json:"room"`
	Node    string `json:"node,omitempty"`
	Members int    `json:"members"`
}

// MemberInfo is one user's connections to a room on one node.
type MemberInfo struct {
	Node        string `json:"node"`
	User        string `json:"user"`
	Connections int    `json:"connections"`
}

// PresenceEntry is one user in a room by the presence registry.
type PresenceEntry struct {
	User        string `json:"user"`
	Connections int    `json:"connections"`
}
