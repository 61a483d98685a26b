package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/heraldrt/herald/auth"
)

// ConnInfo describes a connection to application hooks. It is a snapshot:
// hooks must not modify it.
type ConnInfo struct {
	ID        string
	SessionID string
	// CorrelationID is the upgrade request's X-Request-ID, or ID when
	// it had none that could be used.
	CorrelationID string
	UserID        string
	RemoteAddr    string
	ConnectedAt   time.Time
	// Header holds the upgrade request's headers. It is kept only when a
	// hook is set (Hooks), so that idle connections do not hold them.
	Header http.Header
}

type connDataKey struct{}

// ConnData returns the data OnUpgrade attached to the connection
// (UpgradeResult.Data) from the ctx of any later hook of that connection;
// nil when it attached none. It is kept in the connection's context, not
// in ConnInfo, so that connections without it do not carry the field.
func ConnData(ctx context.Context) json.RawMessage {
	d, _ := ctx.Value(connDataKey{}).(json.RawMessage)
	return d
}

// UpgradeRequest is what OnUpgrade sees of a WebSocket upgrade that the
// Authenticator accepted.
type UpgradeRequest struct {
	// Request is the upgrade request: its headers, cookies, URL and
	// RemoteAddr. The hook must not read its body or keep it.
	Request *http.Request
	// Identity is what the Authenticator decided; the hook must not
	// change it (UpgradeResult.UserID replaces its user).
	Identity *auth.Identity
	// ClientIP is the address per-IP limits count: the TCP peer, or the
	// client's address as Config.TrustedProxies report it in
	// X-Forwarded-For (see Server.ClientIP).
	ClientIP string
	// ConnID and CorrelationID are those the connection will have.
	ConnID        string
	CorrelationID string
}

// UpgradeResult is OnUpgrade's answer for an upgrade it accepts. A nil
// *UpgradeResult keeps the Authenticator's identity.
type UpgradeResult struct {
	// UserID replaces the identity's user when not empty; it must be a
	// valid client id (auth.ValidClientID).
	UserID string
	// Rooms are joined at once, before the welcome, without asking
	// OnJoin or the identity's permissions: the hook decided. They are
	// listed in the welcome's rooms.
	Rooms []string
	// Data is kept with the connection for its later hooks (ConnData);
	// it must be valid JSON when set.
	Data json.RawMessage
}

// UpgradeError is an error OnUpgrade returns to refuse an upgrade with an
// HTTP status and the code of the JSON error body.
type UpgradeError struct {
	Status  int
	Code    string
	Message string
}

func (e *UpgradeError) Error() string { return e.Code + ": " + e.Message }

// Hooks are the embedding application's callbacks. Each runs on the
// connection's own goroutine, so a slow hook delays only that connection. A
// panic in a hook is recovered, logged and counted; the client gets an
// "internal" error and every other connection carries on. The ctx a hook
// gets carries the upgrade request's context values (not its cancellation)
// and the connection's log attributes. The *ConnInfo a hook gets is the
// connection's own, which other goroutines read (log lines, session
// refresh): a hook may read it and keep it, and must not change it.
type Hooks struct {
	// OnUpgrade runs at the upgrade, after the Authenticator and the
	// origin check and before the per-user limits, and decides whether
	// the connection is accepted: an error refuses the upgrade (an
	// *UpgradeError chooses the status and code, any other error is
	// answered 403 "connect_refused"). Unlike OnConnect it runs on the
	// request's goroutine and with the request's context, so nothing is
	// accepted that the hook refuses. It may change the user, join rooms
	// at once and attach data (UpgradeResult).
	OnUpgrade func(ctx context.Context, r *UpgradeRequest) (*UpgradeResult, error)
	// OnConnect runs after the welcome frame. Returning an error closes the
	// connection with 1008 (policy violation) and the error's text as reason.
	OnConnect func(ctx context.Context, c *ConnInfo) error
	// OnDisconnect runs once the connection is gone, with the close code and
	// reason (1006 when the socket just went away).
	OnDisconnect func(ctx context.Context, c *ConnInfo, code int, reason string)
	// OnEvent handles a client's emit. The reply is marshalled to JSON (a
	// json.RawMessage is sent as is) and sent in a reply frame; an error is
	// sent as an error frame: an *EventError chooses its code, any other
	// error is sent with code "event_failed" and its text.
	OnEvent func(ctx context.Context, c *ConnInfo, event string, data json.RawMessage) (reply any, err error)
	// OnJoin runs when a client asks to join a room that its identity may
	// join, before the room is joined: an error refuses the join with an
	// error frame (an *EventError chooses the code, any other error is
	// sent as "forbidden" with its text). Not asked for the rooms of
	// UpgradeResult nor for those a resumed session restores.
	OnJoin func(ctx context.Context, c *ConnInfo, room string) error
	// OnPublish runs when a client publishes to a room it may publish to,
	// before the message goes to the broker. It returns the data to
	// publish: nil keeps the client's, anything else (valid JSON)
	// replaces it. An error refuses the publication as OnJoin's does.
	OnPublish func(ctx context.Context, c *ConnInfo, room, event string, data json.RawMessage) (json.RawMessage, error)
	// OnPresence tells that a connection's join made its user present in
	// room (joined true: no other connection of the user was in it, as
	// the presence registry saw it) or that its leave or disconnect made
	// the user absent (joined false). Users' own rooms are not reported.
	// It costs a presence read per join and leave, done only when set.
	// The rooms a connection is in before its welcome (UpgradeResult.Rooms,
	// a resumed session's) are reported after OnConnect has run.
	OnPresence func(ctx context.Context, c *ConnInfo, room string, joined bool)
}

// set reports whether any hook is set: only then does a connection keep
// its upgrade request's headers and context values.
func (h *Hooks) set() bool {
	return h.OnUpgrade != nil || h.OnConnect != nil || h.OnDisconnect != nil || h.OnEvent != nil ||
		h.OnJoin != nil || h.OnPublish != nil || h.OnPresence != nil
}

// EventError is an error an OnEvent, OnJoin or OnPublish hook returns to
// choose the error code the client sees.
type EventError struct {
	Code    string
	Message string
}

func (e *EventError) Error() string { return e.Code + ": " + e.Message }

// errHookPanic is returned by callHook when the hook panicked.
type errHookPanic struct{ value any }

func (e errHookPanic) Error() string { return fmt.Sprintf("hook panicked: %v", e.value) }

// callHook runs fn, turning a panic into an error after logging it.
func (s *Server) callHook(ctx context.Context, name string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.metrics.HookPanics.WithLabelValues(name).Inc()
			s.log.ErrorContext(ctx, "hook panicked", "hook", name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = errHookPanic{value: v}
		}
	}()
	s.log.DebugContext(ctx, "hook called", "hook", name)
	return fn()
}
