package herald

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/memory"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/internal/logctx"
	"github.com/heraldrt/herald/internal/metrics"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/session"
	memsession "github.com/heraldrt/herald/session/memory"
	"github.com/heraldrt/herald/transport"
)

// Errors returned by the Server's methods.
var (
	ErrDraining = errors.New("herald: server is draining")
	ErrClosed   = errors.New("herald: server is shut down")
)

// Server is a Herald node: an http.Handler serving WebSocket upgrades on
// Config.Path, plus /healthz, /readyz, /metrics and the server API under
// /api/v1/. Create it with New and stop it with Shutdown.
type Server struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	cm       *connMetrics // children of metrics resolved once (metricscache.go)
	registry *prometheus.Registry
	hub      *hub.Hub
	broker   broker.Broker
	sessions session.Store
	presence session.Presence
	// localPresence: presence is the default localPresence, which
	// records nothing (see userRoomPresence).
	localPresence bool
	// opener is presence as a session.Opener when it saves into sessions:
	// a new connection's two writes then take one round trip.
	opener session.Opener
	// presenceNode names this process in the presence registry: the node
	// id and a random suffix, so that a node restarted under the same id
	// (after a crash, without removing its entries) does not keep its
	// previous run's entries alive with its new lease.
	presenceNode string
	auth         auth.Authenticator
	apiKeys      [][]byte
	msgIDs       *id.Sequence
	mux          *http.ServeMux
	limits       *limiter
	revoked      *revocations
	expiries     *expiryClock   // the connections' token clocks (expiry.go)
	trusted      []netip.Prefix // Config.TrustedProxies
	// localOnly: anonymous authentication without an OnUpgrade hook or
	// InsecureNoAuth, so upgrades are served on loopback addresses only.
	localOnly        bool
	remoteRefusalLog sync.Once
	// revLoaded is set once Config.Revocations has been read (at once
	// without it); until then the node is not ready and refuses upgrades.
	// revReload asks syncRevocations to read it again.
	revLoaded atomic.Bool
	revReload chan struct{}
	upgrader  *transport.Upgrader
	// queues counts what every connection holds for its client, v1's
	// and Socket.IO's (WebSocket queues and polling buffers), against
	// MaxNodeQueuedBytes.
	queues *transport.QueueBudget
	// reading bounds the read buffers of v1's and Socket.IO's WebSockets
	// together: MaxNodeReadingBytes.
	reading *transport.ReadBudget
	// takeover bounds the context takeover state of v1's and Socket.IO's
	// WebSockets together: MaxNodeTakeoverBytes.
	takeover *transport.ReadBudget

	connsMu sync.Mutex
	conns   map[*conn]struct{} // a connection leaves when its handler has finished
	index   connIndex          // conns by user and jti (connindex.go)

	// pipes holds the publish pipelines of connections that published
	// through a broker.BatchPublisher (see pubPipeline); batcher is the
	// broker as one, nil when it is not.
	pipesMu sync.Mutex
	pipes   map[*conn]*pubPipeline
	batcher broker.BatchPublisher
	// historian is the broker as a broker.Historian, nil when it keeps
	// no history; historyOf is the rooms' history policy.
	historian broker.Historian
	historyOf broker.HistoryFunc
	// feeds holds the feedSet of each connection that joined a room
	// with history (see recover.go).
	feeds sync.Map

	// ackMu guards awaiting: the connections that may hold messages
	// waiting for an ack, which the redelivery goroutine visits instead
	// of every connection. A connection's acks.mu is taken before ackMu.
	ackMu    sync.Mutex
	awaiting map[*conn]struct{}
	// pendingAckBytes is the size of the unacknowledged messages the
	// node holds, each counted once (see transport.Prepared.Retain).
	pendingAckBytes atomic.Int64
	// publishBytes is what the connections' publish pipelines hold
	// (pubSize of each publication queued or being sent).
	publishBytes atomic.Int64
	// replayBytes is what history replays hold (see recover.go).
	replayBytes atomic.Int64
	// replayWait, if set, replaces replayQueueWait as how long a replay
	// waits for room under MaxNodeReplayBytes (tests).
	replayWait atomic.Int64 // a time.Duration

	admin adminState
	sio   *sioServer // nil unless Config.SocketIO.Enabled

	draining atomic.Bool
	closed   atomic.Bool
	stop     chan struct{} // closed by Shutdown: stops background goroutines
	bgWG     sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// New builds a Server from cfg, starts its broker and background work, and
// returns it ready to serve.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node-" + id.New(5)
	}
	s := &Server{
		cfg:          cfg,
		presenceNode: cfg.NodeID + "." + id.New(5),
		log:          slog.New(logctx.NewHandler(cfg.Logger.Handler())).With("node", cfg.NodeID),
		registry:     cfg.Registry,
		broker:       cfg.Broker,
		sessions:     cfg.Sessions,
		auth:         cfg.Authenticator,
		msgIDs:       id.NewSequence(),
		conns:        make(map[*conn]struct{}),
		pipes:        make(map[*conn]*pubPipeline),
		stop:         make(chan struct{}),
		revoked:      newRevocations(),
		expiries:     newExpiryClock(),
		revReload:    make(chan struct{}, 1),
	}
	s.trusted, _ = parseTrustedProxies(cfg.TrustedProxies) // checked by validate
	s.limits = newLimiter(&s.cfg)
	s.localOnly = auth.IsAnonymous(cfg.Authenticator) && cfg.Hooks.OnUpgrade == nil && !cfg.InsecureNoAuth
	s.queues = transport.NewQueueBudget(cfg.MaxNodeQueuedBytes)
	s.queues.OnLimit(func() { s.countLimit(limitNodeQueuedBytes) })
	s.reading = transport.NewReadBudget(cfg.MaxNodeReadingBytes)
	s.reading.OnRefuse(func() { s.countLimit(limitNodeReadingBytes) })
	s.takeover = transport.NewReadBudget(cfg.MaxNodeTakeoverBytes)
	s.takeover.OnRefuse(func() { s.countLimit(limitNodeTakeoverBytes) })
	s.upgrader = transport.NewUpgrader(transport.Options{
		ReadLimit:            cfg.ReadLimit,
		Compression:          !cfg.DisableCompression,
		CompressionThreshold: cfg.CompressionThreshold,
		CompressionLevel:     cfg.CompressionLevel,
		ContextTakeover:      cfg.CompressionContextTakeover,
		SendQueueSize:        cfg.SendQueueSize,
		SendQueueBytes:       cfg.SendQueueBytes,
		Queues:               s.queues,
		Reading:              s.reading,
		Takeover:             s.takeover,
		WriteTimeout:         cfg.WriteTimeout,
		PingInterval:         cfg.HeartbeatInterval,
		PongTimeout:          cfg.HeartbeatTimeout,
		Subprotocols:         []string{Subprotocol},
	})
	if s.registry == nil {
		s.registry = metrics.NewRegistry()
	}
	s.metrics = metrics.New(s.registry)
	s.cm = newConnMetrics(s.metrics)
	metrics.RegisterGauges(s.registry, metrics.Gauges{
		PendingAckBytes: func() float64 { return float64(s.pendingAckBytes.Load()) },
		SendQueueBytes:  func() float64 { return float64(s.queues.Used()) },
		ReadBufferBytes: func() float64 { return float64(s.reading.Used()) },
		TakeoverBytes:   func() float64 { return float64(s.takeover.Used()) },
		PublishBytes:    func() float64 { return float64(s.publishBytes.Load()) },
		ReplayBytes:     func() float64 { return float64(s.replayBytes.Load()) },
		SocketIOPendingBytes: func() float64 {
			if s.sio == nil { // set by New, before any scrape
				return 0
			}
			return float64(s.sio.pending.bytes())
		},
		SocketIOPollingSessions: func() float64 {
			if s.sio == nil {
				return 0
			}
			return float64(s.sio.eng.Polling())
		},
	})
	if s.broker == nil {
		s.broker = memory.New()
	}
	s.batcher, _ = s.broker.(broker.BatchPublisher)
	if len(cfg.History) > 0 {
		h, ok := s.broker.(broker.Historian)
		if !ok {
			return nil, &ConfigError{Field: "History", Problem: fmt.Sprintf("the broker (%T) keeps no history", s.broker)}
		}
		s.historyOf = historyFunc(cfg.History)
		h.SetHistory(s.historyOf)
		if mb, ok := s.broker.(*memory.Broker); ok {
			mb.LimitHistory(cfg.MaxNodeHistoryBytes, func() { s.countLimit(limitNodeHistoryBytes) })
		}
	}
	if s.sessions == nil {
		ms := memsession.New(time.Minute)
		// What ended connections leave for their sessions is bounded
		// like what live ones hold.
		ms.LimitPending(cfg.MaxNodePendingAckBytes)
		// And the sessions themselves, which ended connections leave
		// for --session-ttl whatever rooms they had joined.
		ms.LimitSessions(0, func() { s.countLimit(limitNodeSessionBytes) })
		s.sessions = ms
	}
	// Both built-in stores count what they keep of ended connections'
	// unacknowledged messages (memory.Store, redis.Store).
	if pb, ok := s.sessions.(interface{ PendingBytes() int64 }); ok {
		metrics.RegisterSessionPendingBytes(s.registry, func() float64 { return float64(pb.PendingBytes()) })
	}
	for _, k := range cfg.APIKeys {
		s.apiKeys = append(s.apiKeys, []byte(k))
	}
	if len(s.apiKeys) == 0 {
		k := id.APIKey()
		s.apiKeys = [][]byte{[]byte(k)}
		s.log.Warn("no API key configured: generated one for /api/v1 (set Config.APIKeys to choose your own; Server.APIKey returns it)", "api_key", k)
	}
	s.hub = hub.New(hub.Config{
		Broker:               s.broker,
		CompressionThreshold: cfg.CompressionThreshold,
		CompressionLevel:     cfg.CompressionLevel,
		OnFanout:             s.observeFanout,
		OnControl:            s.handleControl,
		OnGap:                s.handleGap,
		OnControlGap:         s.requestRevocationReload,
	})
	s.historian, _ = s.broker.(broker.Historian)
	s.presence = cfg.Presence
	if s.presence == nil {
		s.presence = localPresence{s.hub}
		s.localPresence = true
	}
	if o, ok := s.presence.(session.Opener); ok && o.OpenStore() != nil && o.OpenStore() == s.sessions {
		s.opener = o
	}
	if err := s.broker.Start(context.Background(), s.hub); err != nil {
		_ = s.sessions.Close()
		_ = s.upgrader.Close(context.Background()) // it has upgraded nothing
		return nil, fmt.Errorf("herald: start broker: %w", err)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(cfg.Path, s.serveWebSocket)
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	s.mux.HandleFunc("POST /api/v1/publish", s.api("publish", s.serveAPIPublish))
	s.mux.HandleFunc("/api/v1/publish", methodNotAllowed("POST"))
	s.mux.HandleFunc("POST /api/v1/revoke", s.api("revoke", s.serveAPIRevoke))
	s.mux.HandleFunc("/api/v1/revoke", methodNotAllowed("POST"))
	s.mux.HandleFunc("GET /api/v1/rooms/{room}/presence", s.api("presence", s.serveAPIPresence))
	s.mux.HandleFunc("/api/v1/rooms/{room}/presence", methodNotAllowed("GET"))
	s.mux.HandleFunc("/api/v1/", s.api("other", s.serveAPINotFound))
	if cfg.SocketIO.Enabled {
		if err := s.startSocketIO(); err != nil {
			_ = s.broker.Close()
			_ = s.sessions.Close()
			return nil, fmt.Errorf("herald: socket.io: %w", err)
		}
	}
	if err := s.startAdmin(); err != nil {
		_ = s.broker.Close()
		_ = s.sessions.Close()
		return nil, fmt.Errorf("herald: admin console: %w", err)
	}

	if cfg.Revocations == nil {
		s.revLoaded.Store(true)
	} else {
		// Before the node serves: a restarted node must not accept a
		// token revoked before it started. On failure syncRevocations
		// retries, and the node stays unready meanwhile.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.BackendTimeout)
		if err := s.loadRevocations(ctx); err != nil {
			s.log.Warn("revocations not loaded; not ready until they are", "err", err)
		}
		cancel()
		s.bgWG.Add(1)
		go s.syncRevocations()
	}
	s.bgWG.Add(2)
	go s.housekeeping()
	go s.redeliverUnacked()
	return s, nil
}

// ServeHTTP implements http.Handler. Mount the Server on "/" of your mux (its
// routes are more general than yours, so yours win) or on its individual
// paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// APIKey returns the first configured (or generated) server API key.
func (s *Server) APIKey() string { return string(s.apiKeys[0]) }

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Connections returns the number of open WebSocket connections.
func (s *Server) Connections() int {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return len(s.conns)
}

// Publish sends event with data to every member of room, on every node. data
// is marshalled to JSON (a json.RawMessage is used as is). It returns the
// message id once the broker has accepted the message, or an error
// wrapping ErrPublishTimeout if the broker did not confirm it within
// Config.BackendTimeout or before ctx ended: it may still be delivered.
func (s *Server) Publish(ctx context.Context, room, event string, data any, opts ...PublishOption) (string, error) {
	if err := protocol.ValidateRoom(room); err != nil {
		return "", fmt.Errorf("herald: %w", err)
	}
	if err := protocol.ValidateEvent(event); err != nil {
		return "", fmt.Errorf("herald: %w", err)
	}
	raw, err := marshalData(data)
	if err != nil {
		return "", err
	}
	var po publishOptions
	for _, o := range opts {
		o(&po)
	}
	if po.idk != "" {
		if err := protocol.ValidateIdempotencyKey(po.idk); err != nil {
			return "", fmt.Errorf("herald: %w", err)
		}
		po.idk = "a:" + po.idk
	}
	return s.publish(ctx, room, event, raw, pubMeta{cid: correlationID(ctx), ack: po.ack, idk: po.idk})
}

// PublishOption modifies one Publish call.
type PublishOption func(*publishOptions)

type publishOptions struct {
	ack bool
	idk string
}

// WithAck asks every recipient to acknowledge the message. Unacknowledged
// messages are redelivered (same msgId) every Config.AckTimeout, up to
// Config.AckRetries times.
func WithAck() PublishOption { return func(o *publishOptions) { o.ack = true } }

// WithIdempotencyKey makes a retried Publish with the same key (at most
// protocol.MaxIdempotencyKeyLen bytes of printable ASCII) count once: in
// a room that keeps history, a repeat within the history window is
// neither stored nor delivered again, and returns the first one's id.
// Keys of Publish and of the HTTP API share one space, apart from the
// keys of clients' publishes.
func WithIdempotencyKey(key string) PublishOption {
	return func(o *publishOptions) { o.idk = key }
}

// PublishToUser sends event with data to every connection of user, on every
// node.
func (s *Server) PublishToUser(ctx context.Context, user, event string, data any, opts ...PublishOption) (string, error) {
	if user == "" {
		return "", errors.New("herald: empty user")
	}
	return s.Publish(ctx, protocol.UserRoom(user), event, data, opts...)
}

// DisconnectUser closes every connection of user on every node with code
// 4004 ("disconnected by server").
func (s *Server) DisconnectUser(ctx context.Context, user, reason string) error {
	return s.broker.PublishControl(ctx, &broker.Control{Kind: broker.ControlDisconnectUser, User: user, Reason: reason})
}

// pubMeta describes where a publication comes from.
type pubMeta struct {
	cid  string // correlation id of the publisher
	from string // publishing user; empty for server-side publishes
	ack  bool
	idk  string // idempotency key, already scoped to its publisher
}

func (s *Server) publish(ctx context.Context, room, event string, data json.RawMessage, meta pubMeta) (string, error) {
	m := s.newMessage(room, event, data, meta)
	if err := s.publishMessage(ctx, m); err != nil {
		return "", err
	}
	return m.MsgID, nil
}

// publishMessage hands m, made by newMessage, to the broker and waits
// for it at most Config.BackendTimeout.
func (s *Server) publishMessage(ctx context.Context, m *broker.Message) error {
	if s.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BackendTimeout)
	defer cancel()
	return s.publishErr(ctx, s.hub.Publish(ctx, m))
}

// newMessage makes the broker message of a publication, with its id and
// publish time.
func (s *Server) newMessage(room, event string, data json.RawMessage, meta pubMeta) *broker.Message {
	return &broker.Message{
		Room:           room,
		Event:          event,
		Data:           data,
		MsgID:          s.msgIDs.Next(),
		PublishedAt:    time.Now().UnixNano(),
		CorrelationID:  meta.cid,
		From:           meta.from,
		Ack:            meta.ack,
		IdempotencyKey: meta.idk,
	}
}

// publishErr is the error publish returns when the broker answered err
// within ctx.
func (s *Server) publishErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// The command may have reached the broker before the deadline or
		// the caller's cancellation.
		return fmt.Errorf("%w: %w", ErrPublishTimeout, err)
	default:
		return fmt.Errorf("herald: publish: %w", err)
	}
}

// ErrPublishTimeout is returned by publishes that the broker did not
// confirm within Config.BackendTimeout, or whose context ended first: the
// message may still be delivered, so a retry may deliver it twice.
var ErrPublishTimeout = errors.New("herald: publish not confirmed in time; it may still be delivered")

// publishTimeoutMessage tells a client or API caller about ErrPublishTimeout.
const publishTimeoutMessage = "the broker did not confirm the message in time; it may still be delivered, and a retry may deliver it twice"

func marshalData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, errors.New("herald: data is not valid JSON")
		}
		return d, nil
	}
	b, err := protocol.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("herald: marshal data: %w", err)
	}
	return b, nil
}

type correlationKey struct{}

// WithCorrelationID returns a ctx whose publishes carry cid, so that logs
// on every node can tie a delivered message to the request that caused it.
func WithCorrelationID(ctx context.Context, cid string) context.Context {
	return context.WithValue(ctx, correlationKey{}, cid)
}

func correlationID(ctx context.Context) string {
	cid, _ := ctx.Value(correlationKey{}).(string)
	return cid
}

func (s *Server) observeFanout(d *hub.Delivery, members int, took time.Duration) {
	s.metrics.FanoutSeconds.Observe(took.Seconds())
	s.metrics.MessagesOut.WithLabelValues(protocol.TypeEvent).Add(float64(members))
	s.metrics.BytesOut.Add(float64(members * len(d.Frame(v1Codec{}).Payload())))
}

func (s *Server) handleControl(c *broker.Control) {
	switch c.Kind {
	case broker.ControlDisconnectUser:
		for _, cn := range s.connsOf(c.User, "") {
			cn.closeWith(protocol.CloseDisconnected, nonEmpty(c.Reason, "disconnected by server"))
		}
	case broker.ControlRevoke:
		s.applyRevocation(c)
	case broker.ControlAdminQuery, broker.ControlAdminReply:
		s.admin.resp.HandleControl(c)
	case broker.ControlSessionPending:
		s.takeCarriedFor(c.Session, c.User)
	default:
		s.log.Debug("control message ignored", "kind", string(c.Kind))
	}
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Server) addConn(c *conn) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.index.add(c)
	return true
}

func (s *Server) removeConn(c *conn) {
	s.connsMu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.index.remove(c)
	}
	s.connsMu.Unlock()
}

func (s *Server) snapshot() []*conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return slices.AppendSeq(make([]*conn, 0, len(s.conns)), maps.Keys(s.conns))
}

// housekeeping keeps live connections' sessions from expiring, writing
// each connection's last-seen time, every third of the session TTL, and
// forgets idle rate buckets and lapsed revocations.
func (s *Server) housekeeping() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.cfg.SessionTTL / 3)
	defer t.Stop()
	lease := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer lease.Stop()
	s.keepAlive()
	for {
		select {
		case <-s.stop:
			return
		case <-lease.C:
			s.keepAlive()
		case now := <-t.C:
			s.limits.sweep(now, 10*time.Minute)
			s.revoked.sweep(now)
			s.refreshSessions()
		}
	}
}

// keepAlive renews this node's presence lease and records the broker's
// health in herald_broker_up.
func (s *Server) keepAlive() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaseTTL/3)
	defer cancel()
	if err := s.presence.KeepAlive(ctx, s.presenceNode, s.cfg.LeaseTTL); err != nil {
		s.log.Warn("presence lease renewal failed", "err", err)
	}
	if err := s.broker.Health(ctx); err != nil {
		s.metrics.BrokerUp.Set(0)
	} else {
		s.metrics.BrokerUp.Set(1)
	}
}

func (s *Server) checkAPIKey(r *http.Request) bool {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
		return false
	}
	got := []byte(h[len(prefix):])
	ok := 0
	for _, k := range s.apiKeys {
		ok |= subtle.ConstantTimeCompare(got, k)
	}
	return ok == 1
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}
