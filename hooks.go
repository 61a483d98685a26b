package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"
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

// Hooks are the embedding application's callbacks. Each runs on the
// connection's own goroutine, so a slow hook delays only that connection. A
// panic in a hook is recovered, logged and counted; the client gets an
// "internal" error and every other connection carries on. The ctx a hook
// gets carries the upgrade request's context values (not its cancellation)
// and the connection's log attributes. The *ConnInfo a hook gets is the
// connection's own, which other goroutines read (log lines, session
// refresh): a hook may read it and keep it, and must not change it.
type Hooks struct {
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
}

// set reports whether any hook is set: only then does a connection keep
// its upgrade request's headers and context values.
func (h *Hooks) set() bool {
	return h.OnConnect != nil || h.OnDisconnect != nil || h.OnEvent != nil
}

// EventError is an error an OnEvent hook returns to choose the error code the
// client sees.
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
