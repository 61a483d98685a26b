package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/admin"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/demo"
	"github.com/heraldrt/herald/internal/gctune"
	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/internal/metrics"
	"github.com/heraldrt/herald/transport"
)

// Defaults of the HTTP server's own bounds, which apply to every request
// but not to WebSocket traffic: an upgraded connection leaves the HTTP
// server, and its deadlines, at the upgrade.
const (
	defaultHTTPReadTimeout   = 30 * time.Second
	defaultHTTPWriteTimeout  = 30 * time.Second
	defaultHTTPIdleTimeout   = 30 * time.Second
	defaultMaxHTTPConnsPerIP = 256
)

// serveConfig is what `herald serve` reads from flags and environment.
type serveConfig struct {
	addr           string
	logFormat      string
	logLevel       string
	server         herald.Config
	jwt            jwtauth.Config
	insecureNoAuth bool
	tlsCert        string
	tlsKey         string
	maxHeaderBytes int
	// HTTP requests other than WebSocket upgrades (see newHTTPServer).
	httpReadTimeout   time.Duration
	httpWriteTimeout  time.Duration
	httpIdleTimeout   time.Duration
	maxHTTPConnsPerIP int
	engines           engineConfig
	backend           backendConfig
	demo              bool
	pprofAddr         string
	gcTuning          string
	noIOURing         bool
	// netHTTPAccept: upgrades through net/http too (--accept net-http),
	// not herald.Server.Serve's own accept path.
	netHTTPAccept bool
	flags         *envFlags // to name a setting as the user gave it
}

// authConfigured reports whether any token verification is set up.
func (sc *serveConfig) authConfigured() bool {
	return len(sc.jwt.Secret) > 0 || sc.jwt.PublicKeyFile != "" || sc.jwt.JWKSURL != ""
}

// parseServe reads serve's flags, variables and config file; --help is
// written to helpOut (and flag.ErrHelp returned).
func parseServe(args []string, helpOut io.Writer) (*serveConfig, error) {
	return parseServeFlags(newEnvFlags("serve", helpOut), args)
}

// serveFlagSet returns serve's flags, registered and not parsed: what
// other commands that read serve's config file (token) skip in it.
func serveFlagSet() *flag.FlagSet {
	f := newEnvFlags("serve", io.Discard)
	_, _ = parseServeFlags(f, []string{"--help"}) // registers every flag, then stops at --help
	return f.fs
}

// parseServeFlags is parseServe on the flags f.
func parseServeFlags(f *envFlags, args []string) (*serveConfig, error) {
	sc := &serveConfig{flags: f}
	cfg := &sc.server
	f.String("config", "", "YAML config file; keys are these flag names (e.g. drain-timeout: 45s)")
	addr := f.String("addr", "127.0.0.1:8080", "listen address (host:port)")
	logFormat := f.String("log-format", "json", "log format: json or text")
	logLevel := f.String("log-level", "info", "log level: debug, info, warn or error")
	path := f.String("path", herald.DefaultPath, "WebSocket endpoint path")
	apiKey := f.String("api-key", "", "server API key(s) for /api/v1, comma-separated for rotation; empty: one is generated at start and logged once")
	hb := f.Duration("heartbeat-interval", herald.DefaultHeartbeatInterval, "interval between pings (negative disables)")
	hbTimeout := f.Duration("heartbeat-timeout", herald.DefaultHeartbeatTimeout, "time a client has to answer a ping before it is terminated")
	noCompression := f.Bool("no-compression", false, "disable permessage-deflate")
	threshold := f.Int("compression-threshold", herald.DefaultCompressionThreshold, "compress only messages of at least this many bytes")
	level := f.Int("compression-level", herald.DefaultCompressionLevel, "deflate level 1 (fastest) to 9 (smallest)")
	takeover := f.Bool("compression-context-takeover", false, "keep the compression window across messages (more memory per connection)")
	readLimit := f.Int("read-limit", herald.DefaultReadLimit, "largest client message in bytes, after decompression (over it: close 1009)")
	queue := f.Int("send-queue", herald.DefaultSendQueueSize, "per-connection send queue, in messages (full: disconnect with 4008)")
	queueBytes := f.Int("send-queue-bytes", herald.DefaultSendQueueBytes, "per-connection send queue, in bytes (over it: disconnect with 4008)")
	nodeQueued := f.Int("max-node-queued-bytes", herald.DefaultMaxNodeQueuedBytes, "bytes queued to all clients of this node together (at it: the client holding the most that is not reading, else the one whose message does not fit, is closed with 1013)")
	nodeReading := f.Int("max-node-reading-bytes", herald.DefaultMaxNodeReadingBytes, "bytes all clients of this node together may hold in read buffers beyond 4 KiB each (large frames, Socket.IO polling POST bodies and binary attachments still arriving, inflated messages being handled; over it: close 1013, a POST 503)")
	nodeTakeover := f.Int("max-node-takeover-bytes", herald.DefaultMaxNodeTakeoverBytes, "with --compression-context-takeover: compression state all clients of this node together may keep between messages (1.2 MB writer at level 1 and 32 KiB window each); over it a connection's messages are compressed one by one (or, for its own window, it is closed with 1013)")
	writeTimeout := f.Duration("write-timeout", herald.DefaultWriteTimeout, "drop a client that reads nothing for this long (each write of up to 256 KiB)")
	maxRooms := f.Int("max-rooms", herald.DefaultMaxRoomsPerConn, "rooms one connection may join")
	drain := f.Duration("drain-timeout", herald.DefaultDrainTimeout, "on SIGTERM, how long clients get to leave before the rest are terminated")
	retry := f.Duration("drain-retry-after", herald.DefaultDrainRetryAfter, "typical retryAfterMs told to clients on drain (jittered 0.5x-1.5x)")
	ackTimeout := f.Duration("ack-timeout", herald.DefaultAckTimeout, "redeliver a message published with ack if not acknowledged within this time")
	ackRetries := f.Int("ack-retries", herald.DefaultAckRetries, "redeliveries of an unacknowledged message before it is given up")
	maxPending := f.Int("max-pending-acks", herald.DefaultMaxPendingAcks, "unacknowledged messages one connection may hold (over it: close 4008)")
	maxPendingBytes := f.Int("max-pending-ack-bytes", herald.DefaultMaxPendingAckBytes, "bytes of unacknowledged messages one connection may hold (over it: close 4008)")
	nodePendingBytes := f.Int("max-node-pending-ack-bytes", herald.DefaultMaxNodePendingAckBytes, "bytes of unacknowledged messages this node holds for all its connections, each message once (at it: close 1013)")
	replayBytes := f.Int("max-replay-bytes", herald.DefaultMaxReplayBytes, "bytes of history one recovering join's replay holds at a time (its page of history, live messages held back)")
	nodeReplayBytes := f.Int("max-node-replay-bytes", herald.DefaultMaxNodeReplayBytes, "bytes of history all replays on this node hold (over it a replay waits; after 10s its join is answered overloaded)")
	nodeHistoryBytes := f.Int("max-node-history-bytes", herald.DefaultMaxNodeHistoryBytes, "bytes of room history the in-memory engine keeps for all rooms (over it the stalest rooms are forgotten; their members get a gap)")
	nodePublishBytes := f.Int("max-node-publish-bytes", herald.DefaultMaxNodePublishBytes, "bytes of client publications this node holds until the broker confirms them (Redis), all connections together (at it: a publication is answered overloaded)")
	sessionTTL := f.Duration("session-ttl", herald.DefaultSessionTTL, "how long a session outlives its connection's last sign of life")
	backendTimeout := f.Duration("backend-timeout", herald.DefaultBackendTimeout, "longest wait for Redis/NATS on a client's behalf: a publish over it answers publish_timeout, a connect is welcomed without the writes not done by then")
	nodeID := f.String("node-id", "", "name of this node in logs and sessions (default: random)")
	secret := f.String("jwt-secret", "", "HS256 secret (at least 32 bytes); enables JWT authentication")
	pemFile := f.String("jwt-public-key-file", "", "PEM file of public keys (RS256, ES256, EdDSA); enables JWT authentication")
	jwksURL := f.String("jwks-url", "", "JWKS URL fetched at start and refreshed hourly; enables JWT authentication")
	issuer := f.String("jwt-issuer", "", "required iss claim (empty: not checked)")
	audience := f.String("jwt-audience", "", "required aud claim (empty: not checked)")
	maxLifetime := f.Duration("jwt-max-lifetime", 24*time.Hour, "longest token lifetime accepted")
	cookie := f.String("jwt-cookie", "token", "cookie the token is read from")
	noQuery := f.Bool("no-query-token", false, "do not accept ?token= (query strings end up in access logs)")
	publicPrefix := f.String("public-room-prefix", "public:", "rooms under this prefix may be joined by every authenticated user")
	insecure := f.Bool("insecure-no-auth", false, "allow anonymous clients on a non-loopback address")
	origins := f.String("allowed-origins", "", "comma-separated origins allowed cross-origin (https://app.example.com, *.example.com, *)")
	perUser := f.Int("max-conns-per-user", 0, "concurrent connections per user on this node (0: no cap)")
	perIP := f.Int("max-conns-per-ip", 0, "concurrent connections per client IP on this node (0: no cap)")
	upgradeRate := f.Float("upgrade-rate", 0, "upgrades per second per client IP (0: no cap)")
	inFlight := f.Int("max-upgrades-in-flight", herald.DefaultMaxUpgradesInFlight, "connections admitted at once on this node, upgrade to welcome (over it: 503 overloaded with Retry-After; -1: no cap)")
	msgRate := f.Float("message-rate", herald.DefaultMessageRate, "client frames per second per connection (negative: no cap)")
	msgBurst := f.Int("message-burst", 0, "token bucket burst for --message-rate (0: twice the rate)")
	trustedProxies := f.String("trusted-proxies", "", "comma-separated CIDR prefixes or addresses of the proxies in front of Herald (10.0.0.0/8,192.168.1.5): from them, per-IP limits use X-Forwarded-For read from the right, skipping these proxies")
	trustXFF := f.Bool("trust-forwarded-for", false, "deprecated, use --trusted-proxies: trust every peer as one proxy (per-IP limits use the last X-Forwarded-For address)")
	maxHeader := f.Int("max-header-bytes", 32<<10, "largest HTTP request header block")
	httpRead := f.Duration("http-read-timeout", defaultHTTPReadTimeout, "longest time to read an HTTP request, body included (not WebSocket traffic)")
	httpWrite := f.Duration("http-write-timeout", defaultHTTPWriteTimeout, "longest time to write an HTTP response (not WebSocket traffic)")
	httpIdle := f.Duration("http-idle-timeout", defaultHTTPIdleTimeout, "how long an idle keep-alive HTTP connection stays open")
	httpPerIP := f.Int("max-http-conns-per-ip", defaultMaxHTTPConnsPerIP, "concurrent HTTP connections (not WebSockets) per client IP; over it: 429 (0: no cap)")
	tlsCert := f.String("tls-cert", "", "TLS certificate (PEM) to serve https/wss directly")
	tlsKey := f.String("tls-key", "", "TLS private key (PEM) for --tls-cert")
	redisURL := f.String("redis-url", "", "Redis for messages, sessions and presence across nodes (redis://host:6379/0); empty: in-memory, one node")
	redisCluster := f.String("redis-cluster", "", "comma-separated Redis Cluster seed addresses (host:port); uses sharded pub/sub")
	redisPassword := f.String("redis-password", "", "password for --redis-cluster (--redis-url carries its own)")
	natsURL := f.String("nats-url", "", "NATS for messages across nodes (nats://host:4222); sessions and presence still need --redis-url")
	sharedRooms := f.Bool("redis-shared-rooms", false, "with --redis-url: every room on the node's one subscriber connection (a map entry each) instead of a subscription and goroutine per room (≈ 7 KB); for many small rooms; busy rooms reach a lower ceiling this way")
	publishBuffer := f.Int("publish-buffer", 0, "while the broker is down, queue this many publications (NATS: KiB) and send them on return; 0: fail fast with broker_unavailable")
	leaseTTL := f.Duration("lease-ttl", herald.DefaultLeaseTTL, "how long a dead node's presence entries outlive it (lease renewed every third of it)")
	pprofAddr := f.String("pprof-addr", "", "serve net/http/pprof on this separate address (e.g. 127.0.0.1:6060); empty: off. Never expose it publicly")
	gcTuning := f.String("gc-tuning", "adaptive", "adaptive: GOGC between 10 and 100 by what the collector costs (low while quiet, 100 during reconnect storms, more while the live heap is under 8 MiB); off: Go's default. Setting GOGC in the environment turns it off")
	accept := f.String("accept", "herald", "herald: read WebSocket upgrades on --path, and Socket.IO's WebSocket handshakes, with Herald's own accept path (less CPU per connect; every other request, and every upgrade under --tls-cert, goes to net/http); net-http: every request through net/http")
	ioURing := f.String("io-uring", "auto", "auto: write to clients through io_uring where the kernel allows it (one system call for many connections' writes, less CPU per message); off: one writev per connection")
	demoPage := f.Bool("demo", false, "serve a demo chat page at /demo/ (two browser tabs, one room)")
	presenceEvents := f.Bool("presence-events", false, "send presence join/leave events to room members")
	sioPath := f.String("socketio-path", herald.DefaultSocketIOPath, "Socket.IO (Engine.IO v4) endpoint path: unmodified socket.io-client apps connect here (docs/socketio.md)")
	noSIO := f.Bool("no-socketio", false, "do not serve Socket.IO clients")
	sioRecovery := f.Bool("socketio-recovery", false, "Socket.IO connection state recovery: pid and offsets mapped onto Herald sessions and room history (--history)")
	sioPendingBytes := f.Int("socketio-max-pending-bytes", herald.DefaultSocketIOMaxPendingBytes, "bytes the Socket.IO long-polling sessions that joined no namespace yet hold on this node, all together (their handshake requests; over it a handshake is refused with 403)")
	sioPendingPerIP := f.Int("socketio-max-pending-bytes-per-ip", herald.DefaultSocketIOMaxPendingBytesPerIP, "the share of --socketio-max-pending-bytes the sessions of one client IP may hold (over it that IP's handshakes are refused with 403)")
	sioPolling := f.Int("socketio-max-polling-sessions", herald.DefaultSocketIOMaxPollingSessions, "Socket.IO sessions on HTTP long-polling at once on this node (they hold no socket; over it a polling handshake is refused with 403; -1: no cap)")
	sioCookie := f.String("socketio-cookie", "", "set this cookie to the Engine.IO session id, for load balancers that route polling requests by cookie (empty: none; nginx ip_hash needs none)")
	history := f.String("history", "", "rooms that keep a history (offsets, recovery, idempotent publishes): comma-separated PATTERN=SIZE[/TTL], * matching any characters, first match wins, e.g. 'chat:*=100/10m,orders:*=1000/1h'; empty: none")
	backendURL := f.String("backend-url", "", "the application's backend: each hook of --backend-hooks is POSTed to URL/<hook> (docs/backend.md)")
	backendHooks := f.String("backend-hooks", "", "comma list of hooks sent to --backend-url: connect, join, publish, emit, events")
	backendSecret := f.String("backend-secret", "", "shared secret (at least 32 bytes) that signs backend requests (X-Herald-Signature: HMAC-SHA256 over timestamp and body)")
	backendHookTimeout := f.Duration("backend-hook-timeout", backend.DefaultTimeout, "longest wait for one backend hook call, retries included (over it: backend_timeout)")
	backendHookTimeouts := f.String("backend-hook-timeouts", "", "per-hook timeouts over --backend-hook-timeout, comma-separated HOOK=DURATION (e.g. connect=1s,emit=10s)")
	backendMaxCalls := f.Int("backend-max-calls", backend.DefaultMaxConcurrent, "backend calls in flight on this node at most")
	backendH2C := f.Bool("backend-h2c", false, "speak HTTP/2 without TLS to an http:// --backend-url (the backend must support h2c)")
	backendEventsQueue := f.Int("backend-events-queue", backend.DefaultEventsQueue, "webhook events held per node at most (in memory, or in Redis with --redis-url/--redis-cluster); over it they are given up and counted")
	backendEventsBytes := f.Int("backend-events-queue-bytes", backend.DefaultEventsQueueBytes, "bytes of webhook events held per node at most (in Redis: with the disconnected events kept for open connections); over it they are given up and counted")
	adminOn := f.Bool("admin", false, "serve the admin console at /admin/ (docs/admin.md)")
	adminPassword := f.String("admin-password", "", "admin console password (at least 12 characters; not the API key); empty: one is generated at start and logged once")
	adminInsecure := f.Bool("admin-insecure", false, "serve the admin console over plain HTTP to non-loopback clients (only behind a proxy that terminates TLS)")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	sc.addr, sc.logFormat, sc.logLevel = *addr, *logFormat, *logLevel
	cfg.Path = *path
	if *apiKey != "" {
		for _, k := range strings.Split(*apiKey, ",") {
			if k = strings.TrimSpace(k); k != "" {
				cfg.APIKeys = append(cfg.APIKeys, k)
			}
		}
	}
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = *hb, *hbTimeout
	cfg.DisableCompression, cfg.CompressionThreshold, cfg.CompressionLevel = *noCompression, *threshold, *level
	cfg.CompressionContextTakeover = *takeover
	cfg.ReadLimit, cfg.SendQueueSize, cfg.WriteTimeout = int64(*readLimit), *queue, *writeTimeout
	cfg.SendQueueBytes, cfg.MaxNodeQueuedBytes = int64(*queueBytes), int64(*nodeQueued)
	cfg.MaxNodeReadingBytes = int64(*nodeReading)
	cfg.MaxNodeTakeoverBytes = int64(*nodeTakeover)
	cfg.MaxRoomsPerConn = *maxRooms
	cfg.DrainTimeout, cfg.DrainRetryAfter = *drain, *retry
	cfg.AckTimeout, cfg.AckRetries = *ackTimeout, *ackRetries
	cfg.MaxPendingAcks, cfg.MaxPendingAckBytes, cfg.MaxNodePendingAckBytes = *maxPending, int64(*maxPendingBytes), int64(*nodePendingBytes)
	cfg.MaxNodePublishBytes = int64(*nodePublishBytes)
	cfg.MaxReplayBytes, cfg.MaxNodeReplayBytes = int64(*replayBytes), int64(*nodeReplayBytes)
	cfg.MaxNodeHistoryBytes = int64(*nodeHistoryBytes)
	cfg.SessionTTL, cfg.NodeID, cfg.BackendTimeout = *sessionTTL, *nodeID, *backendTimeout
	cfg.AllowedOrigins = splitList(*origins)
	cfg.MaxConnsPerUser, cfg.MaxConnsPerIP, cfg.UpgradeRatePerIP = *perUser, *perIP, *upgradeRate
	cfg.MaxUpgradesInFlight = *inFlight
	cfg.MessageRate, cfg.MessageBurst, cfg.TrustForwardedFor = *msgRate, *msgBurst, *trustXFF
	cfg.TrustedProxies = splitList(*trustedProxies)
	sc.jwt = jwtauth.Config{
		Secret: []byte(*secret), PublicKeyFile: *pemFile, JWKSURL: *jwksURL,
		Issuer: *issuer, Audience: *audience, MaxLifetime: *maxLifetime,
		CookieName: *cookie, DisableQueryToken: *noQuery, PublicRoomPrefix: *publicPrefix,
	}
	sc.insecureNoAuth, sc.tlsCert, sc.tlsKey, sc.maxHeaderBytes = *insecure, *tlsCert, *tlsKey, *maxHeader
	sc.httpReadTimeout, sc.httpWriteTimeout, sc.httpIdleTimeout, sc.maxHTTPConnsPerIP = *httpRead, *httpWrite, *httpIdle, *httpPerIP
	if sc.httpReadTimeout <= 0 || sc.httpWriteTimeout <= 0 || sc.httpIdleTimeout <= 0 {
		return nil, errors.New("--http-read-timeout, --http-write-timeout and --http-idle-timeout must be positive")
	}
	if sc.maxHTTPConnsPerIP < 0 {
		return nil, errors.New("--max-http-conns-per-ip must not be negative")
	}
	sc.engines = engineConfig{redisURL: *redisURL, redisCluster: splitList(*redisCluster), redisPassword: *redisPassword,
		natsURL: *natsURL, publishBuffer: *publishBuffer, sharedRooms: *sharedRooms}
	cfg.PresenceEvents, cfg.LeaseTTL = *presenceEvents, *leaseTTL
	cfg.SocketIO = herald.SocketIOConfig{Enabled: !*noSIO, Path: *sioPath, Recovery: *sioRecovery, Cookie: *sioCookie, MaxPendingBytes: int64(*sioPendingBytes), MaxPendingBytesPerIP: int64(*sioPendingPerIP), MaxPollingSessions: *sioPolling}
	for _, o := range cfg.AllowedOrigins {
		// Engine.IO's polling CORS takes exact origins or "*"; patterns
		// such as *.example.com apply to the origin check only.
		if o == "*" || !strings.Contains(o, "*") {
			cfg.SocketIO.CORSOrigins = append(cfg.SocketIO.CORSOrigins, o)
		}
	}
	cfg.InsecureNoAuth = *insecure // the library applies the same rule per connection
	hooks, err := backend.ParseHooks(*backendHooks)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.origin("backend-hooks"), err)
	}
	hookTimeouts, err := parseHookTimeouts(*backendHookTimeouts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.origin("backend-hook-timeouts"), err)
	}
	sc.backend = backendConfig{url: *backendURL, hooks: hooks, secret: *backendSecret, timeout: *backendHookTimeout,
		hookTimeouts: hookTimeouts, maxCalls: *backendMaxCalls, h2c: *backendH2C, eventsQueue: *backendEventsQueue, eventsBytes: *backendEventsBytes}
	if err := sc.backend.validate(f); err != nil {
		return nil, err
	}
	sc.demo, sc.pprofAddr, sc.gcTuning = *demoPage, *pprofAddr, *gcTuning
	rules, err := herald.ParseHistoryRules(*history)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.origin("history"), err)
	}
	cfg.History = rules
	if *adminOn {
		cfg.Admin = &admin.Config{Password: *adminPassword, AllowInsecure: *adminInsecure}
	} else if *adminPassword != "" || *adminInsecure {
		return nil, errors.New("--admin-password and --admin-insecure need --admin")
	}
	if sc.gcTuning != "adaptive" && sc.gcTuning != "off" {
		return nil, fmt.Errorf("%s: %q is not adaptive or off", f.origin("gc-tuning"), sc.gcTuning)
	}
	switch *accept {
	case "herald":
	case "net-http":
		sc.netHTTPAccept = true
	default:
		return nil, fmt.Errorf("%s: %q is not herald or net-http", f.origin("accept"), *accept)
	}
	switch *ioURing {
	case "auto":
	case "off":
		sc.noIOURing = true
	default:
		return nil, fmt.Errorf("%s: %q is not auto or off", f.origin("io-uring"), *ioURing)
	}
	if n := len(sc.jwt.Secret); n > 0 && n < jwtauth.MinSecretBytes {
		return nil, fmt.Errorf("%s: the secret has %d bytes; HS256 needs at least %d (e.g. openssl rand -hex 32)",
			f.origin("jwt-secret"), n, jwtauth.MinSecretBytes)
	}
	if *maxLifetime < 0 {
		return nil, fmt.Errorf("%s: must not be negative (got %s)", f.origin("jwt-max-lifetime"), *maxLifetime)
	}
	var lv slog.Level
	if lv.UnmarshalText([]byte(sc.logLevel)) != nil {
		return nil, fmt.Errorf("%s: %q is not one of debug, info, warn, error", f.origin("log-level"), sc.logLevel)
	}
	if sc.logFormat != "json" && sc.logFormat != "text" {
		return nil, fmt.Errorf("%s: %q is not json or text", f.origin("log-format"), sc.logFormat)
	}
	if (sc.tlsCert == "") != (sc.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if err := sc.engines.validate(); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(sc.addr); err != nil {
		// Before the loopback check, which would call "8080" a
		// non-loopback address and ask for authentication.
		why := err.Error()
		if ae, ok := err.(*net.AddrError); ok {
			why = ae.Err
		}
		return nil, fmt.Errorf("%s %q is not host:port (%s): e.g. 127.0.0.1:8080, or :8080 for every interface",
			f.origin("addr"), sc.addr, why)
	}
	if !sc.authConfigured() && !sc.backend.has(backend.HookConnect) && !sc.insecureNoAuth && !isLoopback(sc.addr) {
		return nil, fmt.Errorf("%s %s is not a loopback address and no authentication is configured: "+
			"set --jwt-secret, --jwt-public-key-file or --jwks-url, or the connect hook of --backend-hooks, or pass --insecure-no-auth to accept anonymous clients", f.origin("addr"), sc.addr)
	}
	return sc, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// isLoopback reports whether addr (host:port) binds only loopback.
// mutableHandler is a slog.Handler that can be silenced for good.
type mutableHandler struct {
	slog.Handler
	muted *atomic.Bool // shared with the handlers derived from this one
}

func (h *mutableHandler) mute() { h.muted.Store(true) }

func (h *mutableHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.muted.Load() && h.Handler.Enabled(ctx, l)
}

func (h *mutableHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.muted.Load() {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *mutableHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &mutableHandler{Handler: h.Handler.WithAttrs(as), muted: h.muted}
}

func (h *mutableHandler) WithGroup(name string) slog.Handler {
	return &mutableHandler{Handler: h.Handler.WithGroup(name), muted: h.muted}
}

// listenError explains why the address addr, given through origin (a
// flag, its variable or a config file key), could not be listened on,
// and for the common mistakes what to do: another program holds the port,
// or the port needs privileges.
func listenError(origin, addr string, err error) error {
	setting := func(addr string) string { // as the user would write it
		switch {
		case strings.HasPrefix(origin, "--"):
			return origin + " " + addr
		case strings.HasPrefix(origin, "HERALD_"):
			return origin + "=" + addr
		}
		return origin + ": " + addr // herald.yaml: addr
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s: the address is already in use (another herald serve, or another program, listens there): "+
			"stop it, or choose another address, e.g. %s (port 0 takes a free port)", setting(addr), setting(otherPort(addr)))
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: permission denied (ports below 1024 need privileges): choose a port of 1024 or more, e.g. %s",
			setting(addr), setting(otherPort(addr)))
	}
	return fmt.Errorf("%s: %v", setting(addr), err)
}

// otherPort is addr with a port a newcomer could try instead: the next
// one (8081 for 8080), or 8080 for a privileged or unparsable one.
func otherPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:8080"
	}
	n, err := strconv.Atoi(port)
	switch {
	case err != nil || n < 1024 || n >= 65535:
		n = 8080
	default:
		n++
	}
	return net.JoinHostPort(host, strconv.Itoa(n))
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not json or text", format)
}

func serve(args []string, stdout, stderr io.Writer) int {
	sc, err := parseServe(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return usageFailed(stderr, "serve", err)
	}
	if sc.pprofAddr == "" {
		// Nothing can read a heap profile: do not sample for one. The
		// sampler's table alone is 1.4 MB, made at its first sample.
		runtime.MemProfileRate = 0
	}
	logger, err := newLogger(sc.logFormat, sc.logLevel, stderr)
	if err != nil {
		return usageFailed(stderr, "serve", err)
	}
	// The server logs through serverLog, which is silenced if it never
	// starts (its address is taken), so that its shutdown logs no drain.
	serverLog := &mutableHandler{Handler: logger.Handler(), muted: new(atomic.Bool)}
	sc.server.Logger = slog.New(serverLog)
	var authn *jwtauth.Authenticator
	if sc.authConfigured() {
		sc.jwt.Logger = logger
		initCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		authn, err = jwtauth.New(initCtx, sc.jwt)
		cancel()
		if err != nil {
			return usageFailed(stderr, "serve", err)
		}
		defer authn.Close()
		sc.server.Authenticator = authn
	}
	generatedKey := ""
	if len(sc.server.APIKeys) == 0 {
		generatedKey = id.APIKey()
		sc.server.APIKeys = []string{generatedKey}
	}
	generatedAdmin := ""
	if sc.server.Admin != nil && sc.server.Admin.Password == "" {
		generatedAdmin = admin.GeneratePassword()
		sc.server.Admin.Password = generatedAdmin
	}

	if sc.server.TrustForwardedFor {
		logger.Warn("--trust-forwarded-for is deprecated: it trusts every peer as a proxy, so a client that reaches Herald " +
			"directly picks the address its per-IP limits count; list your proxies in --trusted-proxies instead")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// A drain asked for from an admin console takes the path of SIGTERM.
	drainRequested := make(chan struct{}, 1)
	sc.server.OnDrainRequest = func() {
		select {
		case drainRequested <- struct{}{}:
		default:
		}
	}
	sc.server.Version = version

	closeEngines, err := sc.engines.wire(&sc.server, logger)
	if err != nil {
		fmt.Fprintf(stderr, "herald serve: %v\n", err)
		return 1
	}
	if sc.backend.on() {
		if sc.server.NodeID == "" {
			sc.server.NodeID = "node-" + id.New(5)
		}
		q, err := sc.engines.eventsQueue(sc.server.NodeID, sc.server.LeaseTTL, sc.backend.eventsQueue, int64(sc.backend.eventsBytes))
		if err != nil {
			closeEngines()
			fmt.Fprintf(stderr, "herald serve: %v\n", err)
			return 1
		}
		proxy, err := sc.backend.wire(&sc.server, q, sc.server.NodeID, logger)
		if err != nil {
			if q != nil {
				_ = q.Close(context.Background(), false)
			}
			closeEngines()
			fmt.Fprintf(stderr, "herald serve: %v\n", err)
			return 2
		}
		defer closeProxy(proxy, logger)
	}
	if sc.server.Registry == nil {
		sc.server.Registry = metrics.NewRegistry()
	}
	srv, err := herald.New(sc.server)
	if err != nil {
		closeEngines()
		return usageFailed(stderr, "serve", sc.flags.configError(err))
	}
	// TCP keep-alive costs four setsockopt calls per accepted connection
	// (SO_KEEPALIVE and its three timers), about a tenth of the system
	// calls of a WebSocket connect. Heartbeats find a dead WebSocket peer
	// and the HTTP timeouts end idle requests, so keep-alive is only set
	// when heartbeats are off.
	lc := net.ListenConfig{KeepAlive: -1}
	if sc.server.HeartbeatInterval < 0 {
		lc.KeepAlive = 0 // Go's default
	}
	// Listen after the configuration is known to be valid (its error
	// wins) but before the warnings: an address already in use is then
	// one line, not buried under a generated API key that will never
	// serve and the log of a drain that never began.
	ln, err := lc.Listen(context.Background(), "tcp", sc.addr)
	if err != nil {
		serverLog.mute()
		_ = srv.Shutdown(context.Background())
		fmt.Fprintf(stderr, "herald serve: %v\n", listenError(sc.flags.origin("addr"), sc.addr, err))
		return 1
	}
	// Warnings only once the configuration is known to be valid, so that
	// they do not bury the error that stops the server.
	if authn == nil && !sc.backend.has(backend.HookConnect) {
		logger.Warn("no authentication configured: every client is anonymous, its id taken from ?clientId= or " +
			"X-Client-Id (else generated); set --jwt-secret, --jwt-public-key-file or --jwks-url for production")
	}
	if generatedKey != "" {
		logger.Warn("no API key configured: generated one for /api/v1 (set HERALD_API_KEY or --api-key to choose your own)",
			"api_key", generatedKey)
	}
	if generatedAdmin != "" {
		logger.Warn("admin console: no password configured: generated one (set HERALD_ADMIN_PASSWORD or --admin-password to choose your own)",
			"admin_password", generatedAdmin)
	}
	// The binary mounts Herald exactly as a library user would: on a mux,
	// beside other routes.
	mux := http.NewServeMux()
	if sc.server.Admin != nil {
		scheme := "http://"
		if sc.tlsCert != "" {
			scheme = "https://"
		}
		logger.Info("admin console enabled", "url", scheme+ln.Addr().String()+admin.Prefix)
	}
	if sc.demo {
		mux.Handle(demo.Prefix, demo.Handler())
		// The root is where a newcomer looks first: send it to the demo.
		mux.Handle("GET /{$}", http.RedirectHandler(demo.Prefix, http.StatusFound))
		logger.Info("demo chat page enabled", "url", "http://"+ln.Addr().String()+demo.Prefix)
	}
	mux.Handle("/", srv)
	if sc.pprofAddr != "" {
		stopPprof, err := servePprof(sc.pprofAddr, logger)
		if err != nil {
			serverLog.mute() // it never served: no drain to log
			_ = srv.Shutdown(context.Background())
			fmt.Fprintf(stderr, "herald serve: %v\n", listenError(sc.flags.origin("pprof-addr"), sc.pprofAddr, err))
			return 1
		}
		defer stopPprof()
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Read, write and idle timeouts bound every HTTP request. They
		// set deadlines on the connection, which the transport clears
		// when it takes an upgraded one over, so WebSockets outlive them.
		ReadTimeout:    sc.httpReadTimeout,
		WriteTimeout:   sc.httpWriteTimeout,
		IdleTimeout:    sc.httpIdleTimeout,
		MaxHeaderBytes: sc.maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if sc.maxHTTPConnsPerIP > 0 {
		refused := metrics.NewHTTPConnsRefused(sc.server.Registry)
		capper := newHTTPConnCap(sc.maxHTTPConnsPerIP, srv.ClientIP, refused.Inc)
		hs.Handler = capper.handler(mux)
		hs.ConnContext, hs.ConnState = capper.connContext, capper.connState
	}
	gcTuning := sc.gcTuning
	if v, ok := os.LookupEnv("GOGC"); ok && gcTuning == "adaptive" {
		gcTuning = "off (GOGC=" + v + ")"
	}
	if gcTuning == "adaptive" {
		tuneCtx, stopTuning := context.WithCancel(context.Background())
		tuned := make(chan struct{})
		go func() {
			defer close(tuned)
			gctune.Run(tuneCtx, gctune.Config{Log: logger})
		}()
		defer func() { stopTuning(); <-tuned }()
	}
	if sc.noIOURing {
		transport.DisableIOUring()
	}
	writes := "writev"
	if transport.IOURing() {
		writes = "io_uring"
	}
	serveErr := make(chan error, 1)
	go func() {
		if sc.tlsCert != "" {
			serveErr <- hs.ServeTLS(ln, sc.tlsCert, sc.tlsKey)
			return
		}
		if acceptPath(sc) == "net-http" {
			serveErr <- hs.Serve(ln)
			return
		}
		serveErr <- srv.Serve(ln, hs)
	}()
	logger.Info("listening", "addr", ln.Addr().String(), "ws_path", sc.server.Path, "tls", sc.tlsCert != "",
		"engine", sc.engines.name(),
		"auth", sc.authConfigured(), "accept", acceptPath(sc), "gc_tuning", gcTuning, "writes", writes, "version", versionString())

	select {
	case err := <-serveErr:
		logger.Error("http server failed", "err", err)
		_ = srv.Shutdown(context.Background())
		return 1
	case <-ctx.Done():
		logger.Info("signal received: draining")
	case <-drainRequested:
		logger.Info("drain requested from the admin console: draining")
	}
	stop() // a second signal kills the process the default way
	drain := sc.server.DrainTimeout
	if drain == 0 { // --drain-timeout 0: the library's default
		drain = herald.DefaultDrainTimeout
	}
	// The process is gone within the drain timeout: Shutdown keeps a
	// tenth of it for stopping, and the HTTP server gets what is left
	// (connections still busy then end with the process).
	drainCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	code := 0
	if err := srv.Shutdown(drainCtx); err != nil {
		logger.Error("drain finished with errors", "err", err)
		code = 1
	}
	if err := hs.Shutdown(drainCtx); err != nil {
		logger.Warn("http shutdown: requests still in progress at the end of the drain", "err", err)
	}
	logger.Info("exit", "code", code)
	_ = os.Stderr.Sync()
	return code
}

// acceptPath names the path upgrades take: Herald's own accept path
// unless asked otherwise, with TLS, or with heartbeats off (its sockets
// have no TCP keep-alive, which then is what finds a dead peer).
func acceptPath(sc *serveConfig) string {
	if sc.netHTTPAccept || sc.tlsCert != "" || sc.server.HeartbeatInterval < 0 {
		return "net-http"
	}
	return "herald"
}
