package engineio

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/heraldrt/herald/transport"
)

// Defaults applied by New to zero-valued Config fields: those of the
// reference server, except MaxBufferedBytes, which it does not have.
const (
	DefaultPingInterval     = 25 * time.Second
	DefaultPingTimeout      = 20 * time.Second
	DefaultMaxPayload       = 1_000_000
	DefaultMaxBufferedBytes = 4 << 20
	DefaultUpgradeTimeout   = 10 * time.Second
)

// Config configures a Server. The zero value works: every zero field
// takes the default named in its comment.
type Config struct {
	// PingInterval is how often the server pings each client. Default
	// 25s.
	PingInterval time.Duration
	// PingTimeout is how long a client has to answer a ping with a pong
	// before its session is closed with ErrPingTimeout. Default 20s.
	PingTimeout time.Duration
	// MaxPayload is the largest HTTP long-polling request body and the
	// largest WebSocket message a client may send, in bytes, announced in
	// the handshake. A larger body is answered 413 and a larger message
	// closes the WebSocket with 1009; either closes the session with
	// ErrPayloadTooLarge. Default 1,000,000.
	MaxPayload int
	// MaxBufferedBytes bounds what waits to be sent to one client, in
	// bytes: the packets buffered for a polling client's next GET, and a
	// WebSocket's send queue. A message that would take it over the bound
	// closes the session with ErrBufferFull (a single message larger than
	// the bound is still accepted into an empty buffer). Default 4 MiB.
	//
	// The polling buffers of all sessions count, with the WebSockets'
	// send queues, in WebSocket.Queues (a budget of
	// WebSocket.MaxQueuedBytes, 1 GiB by default, when not set): a
	// message that finds that budget at its limit closes, with
	// ErrBufferFull too, the session or connection holding the most whose
	// client is not reading (packets waiting for a GET, a write waiting
	// for the peer) if it holds more than the message's own session
	// would, else its own session. Polling sessions hold no socket, so
	// nothing else bounds how many buffers a client can leave to fill.
	MaxBufferedBytes int
	// UpgradeTimeout is how long a WebSocket opened to upgrade a polling
	// session has to complete the upgrade (the "5" packet) before it is
	// closed; the session goes on over polling. Default 10s.
	UpgradeTimeout time.Duration
	// DisablePolling and DisableWebSocket turn a transport off: its
	// requests are answered 400 {"code":0,"message":"Transport unknown"}.
	// Polling sessions are offered the upgrade to WebSocket only when
	// WebSocket is on.
	DisablePolling, DisableWebSocket bool
	// WebSocket configures the WebSocket connections (compression, write
	// timeout, ...). New overrides three fields: ReadLimit is MaxPayload,
	// SendQueueBytes is MaxBufferedBytes, and PingInterval is negative
	// (Engine.IO sends its own ping packets); and sets Queues when nil, to
	// a budget the polling buffers share with the WebSockets, and Reading
	// likewise, which the long-polling POST bodies count in while they
	// arrive (beyond their first 4 KiB): a POST whose buffer does not fit
	// is answered 503 and its session closed with ErrTransportError.
	WebSocket transport.Options
	// CORS adds cross-origin headers to the polling responses and answers
	// preflight requests. The zero value adds none.
	CORS CORS
	// Cookie, when set, names a cookie set to the session id on the
	// handshake response, for load balancers that route by cookie
	// (sticky sessions for polling). Path "/", HttpOnly, SameSite=Lax.
	Cookie string
	// MaxPolling bounds the sessions on HTTP long-polling, which hold no
	// socket (0: no bound). A polling handshake reserves its place
	// before AllowRequest runs, atomically, and gives it back if it is
	// refused or fails, so that concurrent handshakes never take Polling
	// past the bound (a check of Polling in AllowRequest, followed by
	// the session's count, let a burst of handshakes through between
	// the two). One that finds no place is refused like one AllowRequest
	// refuses (403), with the error PollingFull returns.
	MaxPolling int
	// PollingFull, when set, is called for each polling handshake that
	// MaxPolling refuses: the application counts it there, and its
	// error is the refusal's message (ErrPollingFull when nil).
	PollingFull func(r *http.Request) error
	// AllowRequest, when set, vets each handshake (a request without a
	// sid) before anything is allocated for it. A non-nil error refuses
	// it: a polling handshake is answered 403
	// {"code":4,"message":<err>}, a WebSocket one 400 with the message.
	// It is the hook for bounding sessions (e.g. by Server.Len or a
	// per-IP limiter). Upgrades of an existing session are not vetted.
	AllowRequest func(r *http.Request) error
	// OnConnection is called once per new session, before the client can
	// send anything, with the handshake request (valid only during the
	// call: copy what you need). It returns the Handler of the socket's
	// messages; nil drops them.
	OnConnection func(s *Socket, r *http.Request) Handler
	// NewOwner, when set, is used in OnConnection's place: it is called
	// for each new session once the handshake is vetted, with its request
	// (valid only during the call). The session is made in the Owner's
	// Socket instead of one of its own, and the Owner's OnConnection then
	// gives its Handler (unless the handshake failed meanwhile: the
	// Owner is dropped). The session and what the application keeps for
	// it are then one allocation: one object fewer for each connection.
	NewOwner func(r *http.Request) Owner
	// Logger logs what cannot be answered to a client (a Handler's
	// panic). Default slog.Default().
	Logger *slog.Logger
}

// CORS is the cross-origin policy of the polling transport, as the
// reference server's cors option: each response to an allowed Origin
// carries Access-Control-Allow-Origin, and OPTIONS preflights are
// answered 204.
type CORS struct {
	// Origins lists the allowed origins exactly (scheme://host[:port]),
	// or "*" for any. Empty: no CORS headers.
	Origins []string
	// Credentials allows cookies: the response names the request's
	// origin rather than "*" and adds Access-Control-Allow-Credentials.
	Credentials bool
}

// allow returns the Access-Control-Allow-Origin value for origin, or "".
func (c *CORS) allow(origin string) string {
	if len(c.Origins) == 0 {
		return ""
	}
	any := slices.Contains(c.Origins, "*")
	if any && !c.Credentials {
		return "*"
	}
	if origin != "" && (any || slices.Contains(c.Origins, origin)) {
		return origin
	}
	return ""
}

// setHeaders adds the CORS headers of a response to r to w's header, and
// those of a preflight when preflight is set. w.Header is not asked for
// when there is none to add: a writer may make its header map only then
// (herald.Server.Serve's, for a WebSocket handshake).
func (c *CORS) setHeaders(w http.ResponseWriter, r *http.Request, preflight bool) {
	allowed := c.allow(r.Header.Get("Origin"))
	if allowed == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", allowed)
	if allowed != "*" {
		h.Add("Vary", "Origin")
	}
	if c.Credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if preflight {
		h.Set("Access-Control-Allow-Methods", "GET,POST,OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
			h.Add("Vary", "Access-Control-Request-Headers")
		}
	}
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.PingInterval < 0 || cfg.PingTimeout < 0 || cfg.MaxPayload < 0 || cfg.MaxBufferedBytes < 0 || cfg.UpgradeTimeout < 0 {
		return cfg, errors.New("engineio: negative durations and sizes are not allowed")
	}
	if cfg.DisablePolling && cfg.DisableWebSocket {
		return cfg, errors.New("engineio: both transports disabled")
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxBufferedBytes == 0 {
		cfg.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if cfg.UpgradeTimeout == 0 {
		cfg.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if cfg.PingInterval%time.Millisecond != 0 || cfg.PingTimeout%time.Millisecond != 0 {
		return cfg, errors.New("engineio: PingInterval and PingTimeout must be whole milliseconds")
	}
	if strings.ContainsAny(cfg.Cookie, "=;, \t\r\n") {
		return cfg, errors.New("engineio: invalid cookie name")
	}
	cfg.WebSocket.ReadLimit = int64(cfg.MaxPayload)
	cfg.WebSocket.SendQueueBytes = int64(cfg.MaxBufferedBytes)
	cfg.WebSocket.PingInterval = -1
	if cfg.WebSocket.Queues == nil {
		cfg.WebSocket.Queues = transport.NewQueueBudget(cfg.WebSocket.MaxQueuedBytes)
	}
	if cfg.WebSocket.Reading == nil {
		cfg.WebSocket.Reading = transport.NewReadBudget(cfg.WebSocket.MaxReadingBytes)
	}
	return cfg, nil
}
