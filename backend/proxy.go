package backend

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/protocol"
)

// Proxy sends a node's hooks to the application's backend. Create it with
// New, install Hooks in herald.Config, and Close it after the Server's
// Shutdown (so that the disconnected events of the drain are posted).
type Proxy struct {
	cfg     Config
	base    string // URL with a trailing slash
	log     *slog.Logger
	m       *proxyMetrics
	breaker *breaker
	sem     chan struct{}
	enabled map[string]bool
	events  *dispatcher // nil unless the events hook is on
}

// New checks cfg and builds a Proxy; with the events hook it starts the
// goroutines that post the queue.
func New(cfg Config) (*Proxy, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:     cfg,
		base:    strings.TrimSuffix(cfg.URL, "/") + "/",
		log:     cfg.Logger.With("component", "backend"),
		m:       newMetrics(cfg.Registerer),
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		enabled: map[string]bool{},
	}
	p.breaker = &breaker{threshold: cfg.BreakerFailures, cooldown: cfg.BreakerCooldown, open: p.m.breakerOpen}
	for _, h := range cfg.Hooks {
		p.enabled[h] = true
	}
	if p.enabled[HookEvents] {
		q := cfg.Queue
		if q == nil {
			mq := NewMemoryQueue(cfg.EventsQueue)
			mq.LimitBytes(cfg.EventsQueueBytes)
			q = mq
		}
		p.events = newDispatcher(p, q)
	}
	return p, nil
}

// Close stops the events goroutines after posting what the queue holds
// for up to ctx's deadline; events still queued then stay in a Redis
// queue (another node posts them once this node's lease lapses) or are
// lost with a memory queue (logged and counted as given up).
func (p *Proxy) Close(ctx context.Context) error {
	if p.events == nil {
		return nil
	}
	return p.events.close(ctx)
}

// Hooks returns the herald.Hooks that send the configured hooks to the
// backend: connect is OnUpgrade, join OnJoin, publish OnPublish, emit
// OnEvent, and events OnConnect, OnDisconnect and OnPresence.
func (p *Proxy) Hooks() herald.Hooks {
	var h herald.Hooks
	if p.enabled[HookConnect] {
		h.OnUpgrade = p.connect
	}
	if p.enabled[HookJoin] {
		h.OnJoin = p.join
	}
	if p.enabled[HookPublish] {
		h.OnPublish = p.publish
	}
	if p.enabled[HookEmit] {
		h.OnEvent = p.emit
	}
	if p.events != nil {
		h.OnConnect = p.events.connected
		h.OnDisconnect = p.events.disconnected
		h.OnPresence = p.events.presence
	}
	return h
}

// ConnectRequest is the body of POST /connect.
type ConnectRequest struct {
	ConnID        string              `json:"connId"`
	CorrelationID string              `json:"correlationId"`
	RemoteAddr    string              `json:"remoteAddr"`
	ClientIP      string              `json:"clientIp"`
	Path          string              `json:"path"`
	Query         string              `json:"query,omitempty"`
	Headers       map[string][]string `json:"headers"`
	Cookies       map[string]string   `json:"cookies,omitempty"`
	// Token is the client's credential, wherever it came from (cookie,
	// Authorization, subprotocol, query); TokenSource says where.
	Token       string `json:"token,omitempty"`
	TokenSource string `json:"tokenSource,omitempty"`
	// User is the user the server's own authentication decided (a JWT's
	// subject, or the anonymous client id); Anonymous when no JWT.
	User      string `json:"user"`
	Anonymous bool   `json:"anonymous"`
}

// ConnectResponse is the answer to /connect.
type ConnectResponse struct {
	Allow *bool `json:"allow"`
	// User replaces the connection's user when set.
	User string `json:"user,omitempty"`
	// Rooms are joined at once (no join hook asked).
	Rooms []string `json:"rooms,omitempty"`
	// Data is kept with the connection and sent in its later hooks.
	Data json.RawMessage `json:"data,omitempty"`
	// Status (default 403), Code (default "connect_refused") and Message
	// answer a refused upgrade.
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func (r *ConnectResponse) check() error { return checkAllow(r.Allow) }

func checkAllow(a *bool) error {
	if a == nil {
		return errors.New(`"allow" missing`)
	}
	return nil
}

// Conn describes the connection in the bodies of join, publish, emit and
// events.
type Conn struct {
	ConnID        string          `json:"connId"`
	SessionID     string          `json:"sessionId,omitempty"`
	CorrelationID string          `json:"correlationId"`
	User          string          `json:"user"`
	RemoteAddr    string          `json:"remoteAddr"`
	Data          json.RawMessage `json:"data,omitempty"`
}

func connOf(ctx context.Context, c *herald.ConnInfo) Conn {
	return Conn{ConnID: c.ID, SessionID: c.SessionID, CorrelationID: c.CorrelationID, User: c.UserID, RemoteAddr: c.RemoteAddr, Data: herald.ConnData(ctx)}
}

// JoinRequest is the body of POST /join.
type JoinRequest struct {
	Conn Conn   `json:"conn"`
	Room string `json:"room"`
}

// Decision is the answer to /join and /publish: allow, or deny with an
// error code (default "forbidden") and message for the client. For
// publish, Data (when set) replaces the published data.
type Decision struct {
	Allow   *bool           `json:"allow"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (d *Decision) check() error { return checkAllow(d.Allow) }

// PublishRequest is the body of POST /publish.
type PublishRequest struct {
	Conn  Conn            `json:"conn"`
	Room  string          `json:"room"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// EmitRequest is the body of POST /emit.
type EmitRequest struct {
	Conn  Conn            `json:"conn"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// EmitResponse is the answer to /emit: Reply is the client's reply, or
// Error its error frame.
type EmitResponse struct {
	Reply json.RawMessage `json:"reply,omitempty"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func (p *Proxy) connect(ctx context.Context, r *herald.UpgradeRequest) (*herald.UpgradeResult, error) {
	tok, src := jwtauth.ExtractToken(r.Request, jwtauth.Config{CookieName: p.cfg.TokenCookie, DisableQueryToken: p.cfg.NoQueryToken})
	req := ConnectRequest{
		ConnID: r.ConnID, CorrelationID: r.CorrelationID, RemoteAddr: r.Request.RemoteAddr, ClientIP: r.ClientIP,
		Path: r.Request.URL.Path, Query: r.Request.URL.RawQuery, Headers: r.Request.Header, Cookies: map[string]string{},
		Token: tok, TokenSource: src, User: r.Identity.UserID, Anonymous: r.Identity.Anonymous,
	}
	for _, c := range r.Request.Cookies() {
		req.Cookies[c.Name] = c.Value
	}
	var resp ConnectResponse
	if err := p.call(ctx, HookConnect, r.CorrelationID, &req, &resp); err != nil {
		if errors.Is(err, ErrTimeout) {
			return nil, &herald.UpgradeError{Status: http.StatusGatewayTimeout, Code: protocol.CodeBackendTimeout, Message: "the application's backend did not answer in time; retry later"}
		}
		return nil, &herald.UpgradeError{Status: http.StatusServiceUnavailable, Code: protocol.CodeBackendUnavailable, Message: "the application's backend is unavailable; retry later"}
	}
	if !*resp.Allow {
		status := resp.Status
		if status < 400 || status > 599 {
			status = http.StatusForbidden
		}
		return nil, &herald.UpgradeError{Status: status, Code: clientCode(resp.Code, "connect_refused"), Message: nonEmpty(resp.Message, "connection refused")}
	}
	return &herald.UpgradeResult{UserID: resp.User, Rooms: resp.Rooms, Data: resp.Data}, nil
}

func (p *Proxy) join(ctx context.Context, c *herald.ConnInfo, room string) error {
	var d Decision
	if err := p.call(ctx, HookJoin, c.CorrelationID, &JoinRequest{Conn: connOf(ctx, c), Room: room}, &d); err != nil {
		return clientError(err)
	}
	if !*d.Allow {
		return &herald.EventError{Code: clientCode(d.Code, protocol.CodeForbidden), Message: nonEmpty(d.Message, "not allowed to join "+room)}
	}
	return nil
}

func (p *Proxy) publish(ctx context.Context, c *herald.ConnInfo, room, event string, data json.RawMessage) (json.RawMessage, error) {
	var d Decision
	if err := p.call(ctx, HookPublish, c.CorrelationID, &PublishRequest{Conn: connOf(ctx, c), Room: room, Event: event, Data: data}, &d); err != nil {
		return nil, clientError(err)
	}
	if !*d.Allow {
		return nil, &herald.EventError{Code: clientCode(d.Code, protocol.CodeForbidden), Message: nonEmpty(d.Message, "not allowed to publish to "+room)}
	}
	return d.Data, nil
}

func (p *Proxy) emit(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
	var r EmitResponse
	if err := p.call(ctx, HookEmit, c.CorrelationID, &EmitRequest{Conn: connOf(ctx, c), Event: event, Data: data}, &r); err != nil {
		return nil, clientError(err)
	}
	if r.Error != nil {
		return nil, &herald.EventError{Code: clientCode(r.Error.Code, protocol.CodeEventFailed), Message: r.Error.Message}
	}
	if r.Reply == nil {
		return json.RawMessage(`null`), nil
	}
	return r.Reply, nil
}

// clientError is the error frame a client gets for a failed call.
func clientError(err error) error {
	if errors.Is(err, ErrTimeout) {
		return &herald.EventError{Code: protocol.CodeBackendTimeout, Message: "the application's backend did not answer in time"}
	}
	return &herald.EventError{Code: protocol.CodeBackendUnavailable, Message: "the application's backend is unavailable; retry later"}
}

// clientCode is code when it is a plausible error code (1-64 of a-z, 0-9
// and _), else def: a backend cannot send clients arbitrary text as a code.
func clientCode(code, def string) string {
	if code == "" || len(code) > 64 {
		return def
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return def
		}
	}
	return code
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type proxyMetrics struct {
	calls, retries *prometheus.CounterVec
	errors         *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	breakerOpen    prometheus.Gauge
	eventsSent     prometheus.Counter
	eventsGivenUp  *prometheus.CounterVec
	eventsQueued   prometheus.Gauge
	eventsBytes    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *proxyMetrics {
	m := &proxyMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_backend_calls_total", Help: "Calls to the application's backend, by hook.",
		}, []string{"hook"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_backend_retries_total", Help: "Backend requests sent again after a failure, by hook.",
		}, []string{"hook"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_backend_errors_total", Help: "Failed backend calls, by hook and kind (unavailable, timeout, status, garbage, breaker_open, overloaded).",
		}, []string{"hook", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_backend_call_duration_seconds", Help: "Time a backend call took, retries included, by hook.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"hook"}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_backend_breaker_open", Help: "1 while the backend's circuit breaker is open (calls fail at once).",
		}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_backend_events_sent_total", Help: "Webhook events the backend accepted.",
		}),
		eventsGivenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_backend_events_given_up_total", Help: "Webhook events never delivered, by reason (queue_full, max_age, queue_error, shutdown).",
		}, []string{"reason"}),
		eventsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_backend_events_queued", Help: "Webhook events waiting in this node's queue, read every quarter of the lease.",
		}),
		eventsBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_backend_events_queued_bytes", Help: "Bytes this node's webhook queue holds (its events, and in Redis the disconnected events kept for open connections), read every quarter of the lease.",
		}),
	}
	for _, reason := range []string{"queue_full", "queue_error", "max_age", "shutdown"} {
		m.eventsGivenUp.WithLabelValues(reason) // exported at 0, so that alerts see increases
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.retries, m.errors, m.duration, m.breakerOpen, m.eventsSent, m.eventsGivenUp, m.eventsQueued, m.eventsBytes)
	}
	return m
}
