package herald

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald/admin"
	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/session"
)

// Defaults used for zero Config fields.
const (
	DefaultPath                   = "/ws"
	DefaultHeartbeatInterval      = 30 * time.Second
	DefaultHeartbeatTimeout       = 10 * time.Second
	DefaultCompressionThreshold   = 1024
	DefaultCompressionLevel       = 1
	DefaultReadLimit              = 64 << 10
	DefaultSendQueueSize          = 256
	DefaultSendQueueBytes         = 4 << 20
	DefaultMaxUpgradesInFlight    = 512
	DefaultMaxNodeQueuedBytes     = 1 << 30
	DefaultMaxNodeReadingBytes    = 256 << 20
	DefaultMaxNodeTakeoverBytes   = 256 << 20
	DefaultWriteTimeout           = 10 * time.Second
	DefaultMaxRoomsPerConn        = 128
	DefaultDrainTimeout           = 30 * time.Second
	DefaultDrainRetryAfter        = 2 * time.Second
	DefaultSessionTTL             = 2 * time.Minute
	DefaultAckTimeout             = 5 * time.Second
	DefaultAckRetries             = 3
	DefaultMaxPendingAcks         = 1024
	DefaultMaxPendingAckBytes     = 4 << 20
	DefaultMaxNodePendingAckBytes = 256 << 20
	DefaultMaxNodePublishBytes    = 64 << 20
	DefaultMaxReplayBytes         = 4 << 20
	DefaultMaxNodeReplayBytes     = 64 << 20
	DefaultMaxNodeHistoryBytes    = 256 << 20
	DefaultMessageRate            = 100
	DefaultTokenExpiryNotice      = 30 * time.Second
	DefaultRevocationTTL          = 24 * time.Hour
	DefaultLeaseTTL               = 10 * time.Second
	DefaultBackendTimeout         = 2 * time.Second
)

// Config configures a Server. The zero value works: every field documents
// the default it gets when left zero.
type Config struct {
	// Path is where WebSocket upgrades are accepted. Default "/ws".
	Path string

	// Broker carries room messages between nodes. Default: an in-memory
	// broker (single node). Shutdown closes it.
	Broker broker.Broker
	// Sessions stores resumable sessions. Default: in memory. Shutdown closes it.
	Sessions session.Store
	// Presence records who is in which room, for the presence API and for
	// cluster-wide per-user limits. Default: this node's own rooms, read
	// from the hub, which costs no memory of its own (the node's
	// connections only, as memory.Presence would hold on one node).
	// Shutdown closes it.
	Presence session.Presence
	// PresenceEvents sends a "presence" event ({"action":"join"|"leave",
	// "user","connectionId"}) to a room's members when a connection joins
	// or leaves it. Default off.
	PresenceEvents bool
	// LeaseTTL is how long this node's presence entries outlive it if it
	// dies without a word; the lease is renewed every third of it. Default 10s.
	LeaseTTL time.Duration
	// Authenticator decides who connects. Default: auth.Anonymous, which
	// trusts the id a client claims: it serves clients that connect over
	// loopback only (see InsecureNoAuth).
	Authenticator auth.Authenticator
	// InsecureNoAuth lets anonymous clients connect through any address.
	// Without it, while the Authenticator is auth.Anonymous and no
	// Hooks.OnUpgrade decides who connects, an upgrade that reached the
	// server on an address that is not loopback (a listener on ":8080"
	// reached from another machine) is refused with 403 auth_required and
	// logged: the rule `herald serve` applies to --addr. Default off.
	InsecureNoAuth bool

	// APIKeys guard /api/v1/*. Any of them is accepted (for rotation). When
	// empty the server generates one at start and logs it once.
	APIKeys []string

	// Hooks let the embedding application react to connections and events.
	Hooks Hooks

	// Logger receives structured logs; connection attributes are added from
	// the context. Default slog.Default().
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics. Default: a
	// new registry with the Go and process collectors.
	Registry *prometheus.Registry

	// HeartbeatInterval between pings. Default 30s. Negative disables.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a pong may take before the connection is
	// terminated. Default 10s.
	HeartbeatTimeout time.Duration

	// DisableCompression turns permessage-deflate off. By default it is
	// negotiated when the client offers it.
	DisableCompression bool
	// CompressionThreshold: messages smaller than this many bytes are sent
	// uncompressed. Default 1024.
	CompressionThreshold int
	// CompressionLevel is the flate level, 1 (fastest) to 9; 0 means the
	// default, 1.
	CompressionLevel int
	// MaxNodeTakeoverBytes bounds the compression state that the
	// connections of this node with context takeover
	// (CompressionContextTakeover, where the client allows it) keep
	// between messages, v1's and Socket.IO's WebSockets together: a flate
	// writer each (1.2 MB at level 1, 810 KB at 2-9), made at the first
	// message compressed for it, and a 32 KiB window of the client's
	// compressed messages. A connection whose writer does not fit has its
	// messages compressed one by one, as without takeover; one whose
	// window does not fit is closed with 1013 (try again later).
	// Default 256 MiB (about 200 writers at level 1). Unused without
	// CompressionContextTakeover.
	MaxNodeTakeoverBytes int64
	// CompressionContextTakeover keeps the compressor's window across
	// messages (better ratio, ~64 KiB more memory per connection, and
	// broadcast frames can no longer be compressed once for all). Default off.
	CompressionContextTakeover bool

	// ReadLimit is the largest client message in bytes, counted after
	// decompression; larger ones close the connection with 1009. Default 64 KiB.
	ReadLimit int64
	// SendQueueSize bounds each connection's outgoing queue (in messages): a
	// client whose queue holds that many while its socket is full (it is
	// not reading) is disconnected with 4008. A queue that is long only
	// because the node itself is behind may hold 4× as many first.
	// Default 256.
	SendQueueSize int
	// SendQueueBytes bounds each connection's outgoing queue in bytes
	// (frames before compression): a message that would take it over
	// closes the connection with 4008, whether or not the client still
	// reads. One message larger than the bound is still queued when the
	// queue is empty. A connection holds at most this queue plus one batch
	// being written to it (taken from the queue, so no larger): with the
	// default, 8 MiB in the worst case (plus the kernel's socket buffer).
	// Default 4 MiB; at most 2 GiB.
	SendQueueBytes int64
	// MaxNodeQueuedBytes bounds what all connections of this node queue
	// together, batches being written included (a broadcast frame is
	// counted once per connection it waits in): v1's and Socket.IO's, the
	// latter's long-polling buffers included. A message that arrives
	// while the node is at the bound closes, with 1013 (try again later),
	// the connection or session holding the most whose client is not
	// reading (a write waits for it, or a polling buffer for its next
	// GET), and is queued; only when none holds more than its own
	// client would is that client closed. A Socket.IO one is closed as a
	// slow consumer (its long-polling client learns it at its next poll).
	// Counted in herald_limit_rejections_total{limit="node_queued_bytes"}.
	// Default 1 GiB.
	MaxNodeQueuedBytes int64
	// MaxNodeReadingBytes bounds what all connections of this node hold
	// in read buffers beyond the pooled 4 KiB one, v1's and Socket.IO's
	// WebSockets together: a frame over 4 KiB still arriving gets a
	// buffer of its size, and a fragmented or compressed message an
	// assembly buffer; a decompressed (or reassembled) message over 4 KiB
	// counts from its inflating until the connection reads on, while the
	// node handles it (a hundred compressed bytes inflate to a whole
	// ReadLimit). A client can make the node hold up to ReadLimit
	// (Socket.IO: MaxPayload, 1 MB) that way by sending the start of a
	// large frame slowly, Socket.IO ones before any credential is
	// checked. A connection whose buffer would take the node over the
	// bound is closed with 1013 (try again later). Socket.IO's
	// long-polling POST bodies count too while they arrive (their buffer
	// beyond 4 KiB): one that does not fit is answered 503 and its
	// session closed. So do Socket.IO binary packets waiting for their
	// attachments (the packet and the attachments so far, up to 1 MB
	// each, held until the last one comes, even before a namespace is
	// joined): the connection whose packet does not fit is closed.
	// Default 256 MiB:
	// 4,000 messages of 64 KiB or 268 of 1 MB arriving at the same
	// instant, far more than honest clients send at once, while what an
	// attacker can hold stays a small part of a node's memory.
	MaxNodeReadingBytes int64
	// WriteTimeout bounds each socket write that has to wait for the client
	// (at most 256 KiB per write): a client that reads nothing for this
	// long is dropped. Default 10s.
	WriteTimeout time.Duration
	// MaxRoomsPerConn bounds how many rooms one connection may join (its own
	// user room not counted). Default 128.
	MaxRoomsPerConn int

	// DrainTimeout is how long Shutdown lets clients leave before it
	// terminates the rest. Default 30s.
	DrainTimeout time.Duration
	// DrainRetryAfter is the typical retryAfterMs told to clients in
	// server_shutdown; each client gets a value jittered between 0.5x and
	// 1.5x so they do not reconnect all at once. Default 2s.
	DrainRetryAfter time.Duration

	// SessionTTL is how long a session outlives its last sign of life.
	// Default 2 minutes.
	SessionTTL time.Duration
	// BackendTimeout bounds what the broker, the session store and the
	// presence registry may take on a client's behalf, so that a stalled
	// Redis does not stall clients: a publish (over the socket, the API or
	// Server.Publish) that runs out of time is answered publish_timeout
	// (ErrPublishTimeout), since it may
	// still be delivered; a connect is welcomed once its session and
	// presence writes have had this long, without those that have not
	// finished (logged); a join or leave saves its session within it.
	// Default 2s.
	BackendTimeout time.Duration
	// AckTimeout is how long a message published with ack waits for a
	// client's ack before it is sent again. Default 5s.
	AckTimeout time.Duration
	// AckRetries is how many times an unacknowledged message is redelivered
	// before it is given up (logged and counted). Default 3.
	AckRetries int
	// MaxPendingAcks bounds unacknowledged messages per connection; a client
	// over it is disconnected as a slow consumer (4008). Default 1024.
	MaxPendingAcks int
	// MaxPendingAckBytes bounds the bytes of one connection's
	// unacknowledged messages (their frames, which the node holds for
	// redelivery); a client over it is disconnected as a slow consumer
	// (4008). One message larger than the bound is still delivered when
	// nothing else is pending. Default 4 MiB.
	MaxPendingAckBytes int64
	// MaxNodePendingAckBytes bounds the bytes of unacknowledged messages
	// on this node, each message counted once however many connections
	// wait for its ack. A connection whose message arrives while the node
	// is at the bound is closed with 1013 (try again later). The default
	// in-memory session store (Sessions nil) keeps at most as much of the
	// unacknowledged messages that ended connections leave to their
	// sessions; past it they are dropped, logged and counted
	// (herald_acks_dropped_total). A session/redis store has bounds of its
	// own (redis.Config.MaxPendingBytes per session, MaxNodePendingBytes
	// for what this node stores; herald serve sets them to
	// MaxPendingAckBytes and this): the messages it drops are counted
	// alike, and the connection that resumes the session gets a gap frame
	// for each of their rooms. Default 256 MiB.
	MaxNodePendingAckBytes int64
	// MaxReplayBytes bounds the history one join's replay (recovery) holds
	// at a time: the page of messages read from the engine, read in as
	// many messages as fit (the largest message seen so far, or ReadLimit
	// before any, sets how many: at least 1, at most 128), and the live
	// messages the room's feed holds back meanwhile (past it they are let
	// go and read from history again). A message larger than any seen in
	// the replay before may take one page past it. Default 4 MiB.
	MaxReplayBytes int64
	// MaxNodeReplayBytes bounds what all replays on this node hold
	// together (each one's pages and held messages; one replay alone may
	// pass it by its page). A replay whose page would take the node over
	// it lets the page go and waits for room; after 10 s without, its join
	// is answered with the error overloaded (retry shortly)
	// (herald_limit_rejections_total{limit="node_replay_bytes"},
	// herald_replay_bytes). Default 64 MiB.
	MaxNodeReplayBytes int64
	// MaxNodeHistoryBytes bounds the history the in-memory engine keeps
	// for all rooms of this node (its messages, slots and a fixed overhead
	// per room): each room is bounded by its rule's size, but clients that
	// may publish to rooms a History pattern matches can make rooms without
	// end. Over it, whole rooms are forgotten, the stalest of a sample
	// first (herald_limit_rejections_total{limit="node_history_bytes"}, one
	// per room); a member recovering from a forgotten message is answered
	// recovered false and gets a gap. Engines that keep history outside
	// the node (Redis, NATS) bound it there, and ignore this. Default
	// 256 MiB.
	MaxNodeHistoryBytes int64
	// MaxNodePublishBytes bounds the client publications this node holds
	// until the broker confirms them, all connections together. With an
	// engine that takes publications in batches (Redis), a connection's
	// publications go to the broker while the node reads its next ones;
	// each connection holds at most 128 of them and 1 MiB (its reads wait
	// at either). A publication that arrives while the node holds this
	// much is answered overloaded and not published. Default 64 MiB.
	MaxNodePublishBytes int64

	// AllowedOrigins lists the origins allowed to open cross-origin
	// WebSockets from a browser: "*", full origins ("https://app.example.com")
	// or host patterns ("*.example.com"). Same-origin requests and requests
	// without Origin are always allowed. With the list empty, cross-origin
	// requests are allowed unless their credential is a cookie (then 403).
	AllowedOrigins []string
	// TrustedProxies lists the proxies in front of Herald, as CIDR prefixes
	// ("10.0.0.0/8", "fd00::/8") or single addresses. When a request's TCP
	// peer is one of them, per-IP limits apply to the address taken from
	// X-Forwarded-For read from the right: the first one that is not itself
	// a trusted proxy. A client may put anything at the left of the header;
	// it cannot change what the proxies append on its right. Requests from
	// any other peer are counted by the peer's address, whatever their
	// header says. Default: none (always the TCP peer).
	TrustedProxies []string
	// TrustForwardedFor trusts the TCP peer, whatever its address, as one
	// proxy: per-IP limits use the last X-Forwarded-For address (the one
	// that proxy appended), then skip TrustedProxies as above. Set it only
	// when every request comes through a proxy. Deprecated: list the
	// proxies in TrustedProxies instead. (It used to take the first
	// address, which the client writes; it no longer does.)
	TrustForwardedFor bool
	// MaxConnsPerUser and MaxConnsPerIP cap concurrent connections on this
	// node (429 at the upgrade). Default 0: no cap.
	MaxConnsPerUser int
	MaxConnsPerIP   int
	// MaxUpgradesInFlight caps the connections this node admits at once:
	// from the upgrade request to the welcome (authentication, session
	// and presence writes, a resume's replay). Over it an upgrade (or a
	// Socket.IO CONNECT) is refused at once with 503 "overloaded" and
	// Retry-After, before any work is spent on it, so that a reconnect
	// storm is served a batch at a time instead of every client slowly
	// and, past the clients' handshake timeouts, not at all. Default
	// DefaultMaxUpgradesInFlight; -1: no cap.
	MaxUpgradesInFlight int
	// UpgradeRatePerIP caps upgrades per second per IP (token bucket with
	// UpgradeBurstPerIP, default twice the rate; 429 over it). Default 0: no cap.
	UpgradeRatePerIP  float64
	UpgradeBurstPerIP int
	// MessageRate caps client frames per second per connection (token
	// bucket with MessageBurst, default twice the rate). Over it a frame is
	// answered with rate_limited; a client that keeps sending through a
	// whole burst of refusals is closed with 1008. Default 100; negative
	// disables.
	MessageRate  float64
	MessageBurst int
	// TokenExpiryNotice is how long before its token expires a connection
	// is sent token_expiring. Default 30s (at most half the remaining time).
	TokenExpiryNotice time.Duration
	// Revocations keeps revocations where every node and every node that
	// starts reads them (session/redis.Revocations with Redis): a node
	// loads them before it is ready and accepts upgrades, re-reads them
	// after every resubscribe of its control channel (revocations sent
	// meanwhile never reached it) and every RevocationResync. Default nil:
	// each node keeps only the revocations it received while running, so
	// a restart forgets them. Shutdown closes it.
	Revocations session.Revocations
	// RevocationTTL is how long a revocation without an explicit "until" is
	// remembered: at least the longest token lifetime. Default 24h.
	RevocationTTL time.Duration

	// NodeID names this node in sessions and logs; it may not contain
	// "/". Default: random.
	NodeID string

	// History gives rooms a bounded history with per-room offsets, by
	// room-name pattern; the first matching rule decides. Messages of such
	// rooms are stored by the engine before a publish is answered, carry
	// an offset and an epoch, can be published with an idempotency key,
	// and a node whose link to the engine broke catches them up. The
	// Broker must implement broker.Historian (memory, Redis and NATS do).
	// User rooms never keep history. Default: no room keeps history.
	History []HistoryRule

	// Admin serves the admin console at /admin/ (docs/admin.md) when set;
	// its zero value works (a password is generated and logged once).
	// Default nil: no console on this node. Every node answers the
	// consoles of other nodes, through the broker, either way.
	Admin *admin.Config
	// OnDrainRequest is called when an admin drains this node from a
	// console; it must return quickly and start the application's own
	// shutdown, which calls Shutdown. Default nil: the server calls
	// Shutdown itself, and the application's HTTP server keeps running.
	OnDrainRequest func()
	// Version names the running build in the admin console. Default: the
	// main module's version from the build information.
	Version string

	// SocketIO serves Socket.IO clients (Engine.IO v4, Socket.IO v5) next
	// to protocol v1, on the same core. Default off in the library.
	SocketIO SocketIOConfig
}

func (c *Config) setDefaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	c.SocketIO.setDefaults()
	if c.Authenticator == nil {
		c.Authenticator = auth.Anonymous{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.CompressionThreshold == 0 {
		c.CompressionThreshold = DefaultCompressionThreshold
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = DefaultCompressionLevel
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.SendQueueSize == 0 {
		c.SendQueueSize = DefaultSendQueueSize
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.MaxUpgradesInFlight == 0 {
		c.MaxUpgradesInFlight = DefaultMaxUpgradesInFlight
	}
	if c.MaxNodeQueuedBytes == 0 {
		c.MaxNodeQueuedBytes = DefaultMaxNodeQueuedBytes
	}
	if c.MaxNodeReadingBytes == 0 {
		c.MaxNodeReadingBytes = DefaultMaxNodeReadingBytes
	}
	if c.MaxNodeTakeoverBytes == 0 {
		c.MaxNodeTakeoverBytes = DefaultMaxNodeTakeoverBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxRoomsPerConn == 0 {
		c.MaxRoomsPerConn = DefaultMaxRoomsPerConn
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.DrainRetryAfter == 0 {
		c.DrainRetryAfter = DefaultDrainRetryAfter
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.AckRetries == 0 {
		c.AckRetries = DefaultAckRetries
	}
	if c.MaxPendingAcks == 0 {
		c.MaxPendingAcks = DefaultMaxPendingAcks
	}
	if c.MaxPendingAckBytes == 0 {
		c.MaxPendingAckBytes = DefaultMaxPendingAckBytes
	}
	if c.MaxNodePendingAckBytes == 0 {
		c.MaxNodePendingAckBytes = DefaultMaxNodePendingAckBytes
	}
	if c.MaxNodePublishBytes == 0 {
		c.MaxNodePublishBytes = DefaultMaxNodePublishBytes
	}
	if c.MaxReplayBytes == 0 {
		c.MaxReplayBytes = DefaultMaxReplayBytes
	}
	if c.MaxNodeReplayBytes == 0 {
		c.MaxNodeReplayBytes = DefaultMaxNodeReplayBytes
	}
	if c.MaxNodeHistoryBytes == 0 {
		c.MaxNodeHistoryBytes = DefaultMaxNodeHistoryBytes
	}
	if c.MessageRate == 0 {
		c.MessageRate = DefaultMessageRate
	}
	if c.TokenExpiryNotice == 0 {
		c.TokenExpiryNotice = DefaultTokenExpiryNotice
	}
	if c.RevocationTTL == 0 {
		c.RevocationTTL = DefaultRevocationTTL
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.BackendTimeout == 0 {
		c.BackendTimeout = DefaultBackendTimeout
	}
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("herald: invalid config")

// ConfigError is the error New returns for an invalid Config. Field is the
// field's Go name, with an index or sub-field where it applies
// ("CompressionLevel", "APIKeys", "History[0].Size"), Problem what is
// wrong with its value. errors.Is(err, ErrConfig) holds for it; a program
// that sets Config from its own flags can use Field to name the flag the
// user typed (the herald binary does).
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return ErrConfig.Error() + ": " + e.Field + ": " + e.Problem }

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if err := c.SocketIO.validate(bad); err != nil {
		return err
	}
	switch {
	case !strings.HasPrefix(c.Path, "/"):
		return bad("Path", "must start with / (got %q)", c.Path)
	case c.SocketIO.Enabled && c.SocketIO.Path == c.Path:
		return bad("SocketIO.Path", "must differ from Path (both %q)", c.Path)
	case c.CompressionLevel < 1 || c.CompressionLevel > 9:
		return bad("CompressionLevel", "must be 1..9 (got %d)", c.CompressionLevel)
	case c.ReadLimit < 256:
		return bad("ReadLimit", "must be at least 256 bytes (got %d)", c.ReadLimit)
	case c.SendQueueSize < 1:
		return bad("SendQueueSize", "must be positive (got %d)", c.SendQueueSize)
	case c.SendQueueBytes < 1 || c.SendQueueBytes > 1<<31-1:
		return bad("SendQueueBytes", "must be 1..2147483647 (got %d)", c.SendQueueBytes)
	case c.MaxNodeQueuedBytes < 1:
		return bad("MaxNodeQueuedBytes", "must be positive (got %d)", c.MaxNodeQueuedBytes)
	case c.MaxNodeReadingBytes < 1:
		return bad("MaxNodeReadingBytes", "must be positive (got %d)", c.MaxNodeReadingBytes)
	case c.MaxNodeTakeoverBytes < 1:
		return bad("MaxNodeTakeoverBytes", "must be positive (got %d)", c.MaxNodeTakeoverBytes)
	case c.HeartbeatInterval > 0 && c.HeartbeatTimeout <= 0:
		return bad("HeartbeatTimeout", "must be positive (got %s)", c.HeartbeatTimeout)
	case c.WriteTimeout < 0:
		return bad("WriteTimeout", "must be positive (got %s)", c.WriteTimeout)
	case c.DrainTimeout < 0:
		return bad("DrainTimeout", "must be positive (got %s)", c.DrainTimeout)
	case c.AckTimeout < 0:
		return bad("AckTimeout", "must be positive (got %s)", c.AckTimeout)
	case c.AckRetries < 0:
		return bad("AckRetries", "must not be negative (got %d)", c.AckRetries)
	case c.MaxPendingAcks < 0:
		return bad("MaxPendingAcks", "must not be negative (got %d)", c.MaxPendingAcks)
	case c.MaxPendingAckBytes < 0:
		return bad("MaxPendingAckBytes", "must be positive (got %d)", c.MaxPendingAckBytes)
	case c.MaxNodePendingAckBytes < 0:
		return bad("MaxNodePendingAckBytes", "must be positive (got %d)", c.MaxNodePendingAckBytes)
	case c.MaxNodePublishBytes < 0:
		return bad("MaxNodePublishBytes", "must be positive (got %d)", c.MaxNodePublishBytes)
	case c.MaxReplayBytes < 0:
		return bad("MaxReplayBytes", "must be positive (got %d)", c.MaxReplayBytes)
	case c.MaxNodeReplayBytes < 0:
		return bad("MaxNodeReplayBytes", "must be positive (got %d)", c.MaxNodeReplayBytes)
	case c.MaxNodeHistoryBytes < 0:
		return bad("MaxNodeHistoryBytes", "must be positive (got %d)", c.MaxNodeHistoryBytes)
	case c.SessionTTL < 0:
		return bad("SessionTTL", "must be positive (got %s)", c.SessionTTL)
	case c.BackendTimeout < 0:
		return bad("BackendTimeout", "must be positive (got %s)", c.BackendTimeout)
	case strings.Contains(c.NodeID, "/"):
		return bad("NodeID", "may not contain \"/\" (got %q)", c.NodeID)
	case c.MaxConnsPerUser < 0:
		return bad("MaxConnsPerUser", "must not be negative (got %d)", c.MaxConnsPerUser)
	case c.MaxUpgradesInFlight < -1:
		return bad("MaxUpgradesInFlight", "must be positive, or -1 for no cap (got %d)", c.MaxUpgradesInFlight)
	case c.MaxConnsPerIP < 0:
		return bad("MaxConnsPerIP", "must not be negative (got %d)", c.MaxConnsPerIP)
	case c.UpgradeRatePerIP < 0:
		return bad("UpgradeRatePerIP", "must not be negative (got %g)", c.UpgradeRatePerIP)
	case c.MaxRoomsPerConn < 0:
		return bad("MaxRoomsPerConn", "must be positive (got %d)", c.MaxRoomsPerConn)
	}
	if err := c.validateHistory(bad); err != nil {
		return err
	}
	if c.Admin != nil {
		if err := c.Admin.Validate(); err != nil {
			return bad("Admin.Password", "%v", err)
		}
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return bad("TrustedProxies", "%v", err)
	}
	for i, k := range c.APIKeys {
		if len(k) < 16 {
			// The key itself is a secret: say which one, not what it is.
			return bad("APIKeys", "key %d of %d has %d characters; each needs at least 16", i+1, len(c.APIKeys), len(k))
		}
	}
	return nil
}
