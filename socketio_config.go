package herald

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/heraldrt/herald/adapter/socketio"
	"github.com/heraldrt/herald/hub"
)

// Defaults of SocketIOConfig.
const (
	DefaultSocketIOPath                 = "/socket.io/"
	DefaultSocketIOConnectTimeout       = 10 * time.Second
	DefaultSocketIOMaxPendingBytes      = 64 << 20
	DefaultSocketIOMaxPendingBytesPerIP = 1 << 20
	DefaultSocketIOMaxPollingSessions   = 20_000
)

// SocketIOConfig configures Herald's Socket.IO endpoint: Engine.IO v4
// (long-polling, WebSocket and the upgrade between them) with Socket.IO v5
// on top, served next to protocol v1 by the same core. A Socket.IO socket
// is a connection like any other: it passes the same admission (the
// Authenticator, revocation, origin, OnUpgrade, limits), joins the same
// rooms, gets the same room publications and direct messages, and its
// events reach the same hooks. docs/socketio.md describes the event
// convention (herald:join, herald:leave, herald:publish, ...) and what is
// supported.
type SocketIOConfig struct {
	// Enabled serves Socket.IO at Path. Default false in the library;
	// `herald serve` turns it on unless --no-socketio.
	Enabled bool
	// Path is where Engine.IO requests are served, the client's path
	// option. Default "/socket.io/".
	Path string
	// Namespaces are served besides "/"; a CONNECT to any other is
	// refused with the CONNECT_ERROR "Invalid namespace". Each namespace
	// is a protocol of its own for the hub (room messages are encoded
	// once per namespace), so at most hub.MaxCodecs-2 of them.
	Namespaces []string
	// PingInterval and PingTimeout are Engine.IO's heartbeat: a client
	// that does not answer a ping within PingTimeout is dropped. Defaults
	// 25 s and 20 s (Engine.IO's).
	PingInterval, PingTimeout time.Duration
	// MaxPayload bounds a polling request's body and a WebSocket message
	// from a client, in bytes. Default 1,000,000 (Engine.IO's).
	MaxPayload int
	// ConnectTimeout closes an Engine.IO connection that joined no
	// namespace that long after its handshake. Default 10 s.
	ConnectTimeout time.Duration
	// MaxPendingBytes bounds what the long-polling sessions that have
	// joined no namespace yet hold, all together: each keeps its
	// handshake request (headers, URL) for the admission of its CONNECT,
	// and holds no socket, so nothing else bounds how many a client opens.
	// A session is counted as its request's header and URL bytes plus
	// 2 KiB, from its handshake until its first CONNECT is admitted or it
	// closes. A handshake that does not fit is refused with 403
	// {"code":4,"message":…} (herald_limit_rejections_total{limit="socketio_pending_bytes"}).
	// Default 64 MiB.
	MaxPendingBytes int64
	// MaxPendingBytesPerIP is the share of MaxPendingBytes the sessions of
	// one client IP (Server.ClientIP: the TCP peer, or the client a
	// trusted proxy names) may hold, so that one address cannot fill the
	// node's bound and have every other client's handshake refused. Over
	// it: 403 as above, herald_limit_rejections_total{limit="socketio_pending_bytes_per_ip"}.
	// Default 1 MiB (about 500 plain handshakes waiting for their CONNECT
	// at once, which a NAT of thousands of browsers reconnecting together
	// does not reach: a CONNECT follows its handshake within a round trip).
	MaxPendingBytesPerIP int64
	// MaxPollingSessions bounds the Engine.IO sessions on HTTP
	// long-polling at once on this node, whether or not they joined a
	// namespace: they hold no socket, so unlike WebSockets nothing else
	// (the descriptor limit) bounds how many an authenticated client, or
	// any client where connections need no credential, keeps open, each
	// holding a few KB (the session, its connection and the request kept
	// for admission) for as long as it answers pings. Sessions that
	// upgrade to WebSocket leave the count. The bound is exact: each
	// polling handshake reserves its place atomically before it is
	// vetted, and gives it back if refused, so a burst of handshakes at
	// once does not take the count past it. A polling handshake over it
	// is refused with 403 {"code":4,…}
	// (herald_limit_rejections_total{limit="socketio_polling_sessions"};
	// herald_socketio_polling_sessions). Default 20,000; -1: no cap.
	MaxPollingSessions int
	// Cookie, when set, names a cookie set to the Engine.IO session id on
	// the handshake, for load balancers that keep polling requests on
	// one node by cookie. Long-polling needs sticky sessions; see
	// docs/socketio.md.
	Cookie string
	// CORSOrigins lists the origins whose cross-origin polling requests
	// get CORS headers ("*" for any). Default none.
	CORSOrigins []string
	// Recovery turns Socket.IO's connection state recovery on: the
	// CONNECT reply carries a pid (the Herald session) and every room
	// message an offset, and a client that reconnects with them, to any
	// node, resumes its session and gets what it missed of a room that
	// keeps history (Config.History). Default off: the CONNECT reply is
	// {"sid":…}.
	Recovery bool

	// OnConnect runs once the core accepted a socket (after
	// Hooks.OnConnect), before the CONNECT reply: s carries the CONNECT's
	// auth object (s.Auth) and can be emitted on (those packets follow
	// the reply). An error refuses the CONNECT with a CONNECT_ERROR
	// carrying its text (a *socketio.ConnectError chooses the payload).
	OnConnect func(ctx context.Context, c *ConnInfo, s *socketio.Socket) error
	// OnEvent, when set, receives every event of a Socket.IO client other
	// than the herald:* ones, with its arguments as the wire carries them
	// (several, binary attachments included) and the client's ack (nil
	// unless it asked for one). Without it such events go to
	// Hooks.OnEvent: the data is the event's single argument (or the
	// array of its arguments when there are several), and the hook's
	// reply is the ack's argument.
	OnEvent func(ctx context.Context, c *ConnInfo, s *socketio.Socket, event string, args socketio.Args, ack socketio.AckFunc)
}

func (c *SocketIOConfig) setDefaults() {
	if c.Path == "" {
		c.Path = DefaultSocketIOPath
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultSocketIOConnectTimeout
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultSocketIOMaxPendingBytes
	}
	if c.MaxPendingBytesPerIP == 0 {
		c.MaxPendingBytesPerIP = DefaultSocketIOMaxPendingBytesPerIP
	}
	if c.MaxPollingSessions == 0 {
		c.MaxPollingSessions = DefaultSocketIOMaxPollingSessions
	}
}

// validate checks c; bad is Config.validate's error constructor.
func (c *SocketIOConfig) validate(bad func(field, format string, args ...any) error) error {
	switch {
	case !c.Enabled:
		return nil
	case !strings.HasPrefix(c.Path, "/"):
		return bad("SocketIO.Path", "must start with / (got %q)", c.Path)
	case len(c.Namespaces) > hub.MaxCodecs-2:
		return bad("SocketIO.Namespaces", "at most %d besides \"/\" (got %d)", hub.MaxCodecs-2, len(c.Namespaces))
	case c.PingInterval < 0 || c.PingTimeout < 0 || c.MaxPayload < 0 || c.ConnectTimeout < 0 || c.MaxPendingBytes < 0 || c.MaxPendingBytesPerIP < 0:
		return bad("SocketIO", "PingInterval, PingTimeout, MaxPayload, ConnectTimeout, MaxPendingBytes and MaxPendingBytesPerIP must not be negative")
	case c.MaxPollingSessions < -1:
		return bad("SocketIO.MaxPollingSessions", "must be positive, or -1 for no cap (got %d)", c.MaxPollingSessions)
	}
	seen := map[string]bool{"/": true}
	for i, ns := range c.Namespaces {
		if !strings.HasPrefix(ns, "/") || seen[ns] || strings.ContainsAny(ns, ",?") {
			return bad(fmt.Sprintf("SocketIO.Namespaces[%d]", i), "must start with /, be unique, not be \"/\" and hold no , or ? (got %q)", ns)
		}
		seen[ns] = true
	}
	return nil
}
