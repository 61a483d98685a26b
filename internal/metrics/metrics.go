// Package metrics defines Herald's Prometheus metrics. Each Server owns one
// Metrics registered on its own registry, so several servers (in tests, or
// embedded twice) never collide.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector Herald exports.
type Metrics struct {
	Connections         prometheus.Gauge
	ConnectionsOpened   prometheus.Counter
	ConnectionsClosed   *prometheus.CounterVec // by reason
	UpgradesRejected    *prometheus.CounterVec // by reason
	MessagesIn          *prometheus.CounterVec // by type
	MessagesOut         *prometheus.CounterVec // by type
	BytesIn             prometheus.Counter
	BytesOut            prometheus.Counter
	HeartbeatTerminated prometheus.Counter
	SlowConsumers       prometheus.Counter
	AcceptErrors        prometheus.Counter
	Errors              *prometheus.CounterVec // by code
	FanoutSeconds       prometheus.Histogram
	HookPanics          *prometheus.CounterVec // by hook
	APIRequests         *prometheus.CounterVec // by endpoint, code
	Draining            prometheus.Gauge
	BrokerUp            prometheus.Gauge
	LimitRejections     *prometheus.CounterVec // by limit
	Redeliveries        prometheus.Counter
	AcksExpired         prometheus.Counter
	AcksDropped         prometheus.Counter
	AcksCarried         prometheus.Counter
	Recoveries          *prometheus.CounterVec // by result
	Gaps                prometheus.Counter
	// The same connections and client messages by protocol (v1,
	// socketio): the series above keep their labels for the dashboards
	// and alerts built on them.
	ProtocolConnections       *prometheus.GaugeVec   // by protocol
	ProtocolConnectionsOpened *prometheus.CounterVec // by protocol
	ProtocolConnectionsClosed *prometheus.CounterVec // by protocol, reason
	ProtocolMessagesIn        *prometheus.CounterVec // by protocol, type
}

// New creates the metrics and registers them, plus the Go and process
// collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_connections", Help: "Open WebSocket connections.",
		}),
		ConnectionsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_connections_opened_total", Help: "WebSocket connections accepted.",
		}),
		ConnectionsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_connections_closed_total", Help: "WebSocket connections closed, by reason.",
		}, []string{"reason"}),
		UpgradesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_upgrades_rejected_total", Help: "Upgrade requests refused before a WebSocket existed, by reason.",
		}, []string{"reason"}),
		MessagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_messages_received_total", Help: "Client frames received, by protocol type.",
		}, []string{"type"}),
		MessagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_messages_sent_total", Help: "Frames queued to clients, by protocol type.",
		}, []string{"type"}),
		BytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_received_bytes_total", Help: "Payload bytes of client messages after decompression.",
		}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_sent_bytes_total", Help: "Payload bytes of frames queued to clients before compression.",
		}),
		HeartbeatTerminated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_heartbeat_terminations_total", Help: "Connections terminated because no pong arrived in time.",
		}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_slow_consumer_disconnects_total", Help: "Connections closed because their send queue was full.",
		}),
		AcceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_accept_errors_total", Help: "Accepts that failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) or an aborted connection, each followed by a pause of the accept loop.",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_errors_total", Help: "Error frames sent to clients, by code.",
		}, []string{"code"}),
		FanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_fanout_duration_seconds",
			Help:    "Time to queue one message to all local members of its room.",
			Buckets: []float64{1e-6, 5e-6, 25e-6, 1e-4, 5e-4, 0.0025, 0.01, 0.05, 0.25, 1},
		}),
		HookPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_hook_panics_total", Help: "Application hook panics recovered, by hook.",
		}, []string{"hook"}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_api_requests_total", Help: "Server API requests, by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		Draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_draining", Help: "1 while the server is draining for shutdown.",
		}),
		BrokerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_broker_up", Help: "1 while the broker (engine between nodes) is reachable, checked every few seconds.",
		}),
		LimitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_limit_rejections_total", Help: "Upgrades or messages refused by a limit, by limit.",
		}, []string{"limit"}),
		Redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_redeliveries_total", Help: "Messages sent again because the client did not acknowledge them in time.",
		}),
		AcksExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_acks_expired_total", Help: "Messages given up after the last redelivery went unacknowledged.",
		}),
		AcksDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_acks_dropped_total", Help: "Messages still unacknowledged when their connection ended; they are not redelivered.",
		}),
		AcksCarried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_acks_carried_total", Help: "Messages still unacknowledged when their connection ended, kept with the session for the connection that resumes it.",
		}),
		Recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_recoveries_total", Help: "Joins that asked to recover a room from a position, by result (recovered, unrecoverable).",
		}, []string{"result"}),
		Gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gap_frames_total", Help: "Gap frames sent: connections told they may have missed messages history cannot give back.",
		}),
		ProtocolConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_protocol_connections", Help: "Open connections, by protocol (v1, socketio).",
		}, []string{"protocol"}),
		ProtocolConnectionsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_protocol_connections_opened_total", Help: "Connections accepted, by protocol (v1, socketio).",
		}, []string{"protocol"}),
		ProtocolConnectionsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_protocol_connections_closed_total", Help: "Connections closed, by protocol (v1, socketio) and reason.",
		}, []string{"protocol", "reason"}),
		ProtocolMessagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_protocol_messages_received_total", Help: "Client requests received, by protocol (v1, socketio) and type.",
		}, []string{"protocol", "type"}),
	}
	reg.MustRegister(
		m.Connections, m.ConnectionsOpened, m.ConnectionsClosed, m.UpgradesRejected,
		m.MessagesIn, m.MessagesOut, m.BytesIn, m.BytesOut, m.HeartbeatTerminated,
		m.SlowConsumers, m.AcceptErrors, m.Errors, m.FanoutSeconds, m.HookPanics, m.APIRequests, m.Draining,
		m.Redeliveries, m.AcksExpired, m.AcksDropped, m.LimitRejections, m.BrokerUp,
		m.Recoveries, m.Gaps, m.AcksCarried,
		m.ProtocolConnections, m.ProtocolConnectionsOpened, m.ProtocolConnectionsClosed, m.ProtocolMessagesIn,
	)
	return m
}

// Gauges are values read when the metrics are scraped, from counters the
// server keeps on its hot paths anyway.
type Gauges struct {
	// PendingAckBytes is the size of the messages waiting for a client's ack.
	PendingAckBytes func() float64
	// SendQueueBytes is the size of what connections' send queues hold,
	// batches being written to slow clients included.
	SendQueueBytes func() float64
	// ReadBufferBytes is what connections hold in read buffers beyond
	// the pooled 4 KiB one (Config.MaxNodeReadingBytes).
	ReadBufferBytes func() float64
	// TakeoverBytes is the compression state connections with context
	// takeover keep between messages (Config.MaxNodeTakeoverBytes).
	TakeoverBytes func() float64
	// PublishBytes is the size of the publications that connections'
	// publish pipelines hold until the broker confirms them.
	PublishBytes func() float64
	// ReplayBytes is the history the node's replays (recovering joins)
	// hold: pages read from the engine and live messages held back.
	ReplayBytes func() float64
	// SocketIOPendingBytes is what the Socket.IO long-polling sessions
	// that joined no namespace yet are charged (SocketIOConfig.MaxPendingBytes).
	SocketIOPendingBytes func() float64
	// SocketIOPollingSessions is how many Engine.IO sessions are on
	// long-polling (SocketIOConfig.MaxPollingSessions).
	SocketIOPollingSessions func() float64
}

// RegisterGauges registers g's functions on reg.
func RegisterGauges(reg prometheus.Registerer, g Gauges) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_pending_ack_bytes",
			Help: "Bytes of messages held for redelivery until clients acknowledge them (each message counted once).",
		}, g.PendingAckBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_send_queue_bytes",
			Help: "Bytes queued to clients or being written to slow ones (a broadcast frame counted once per connection).",
		}, g.SendQueueBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_read_buffer_bytes",
			Help: "Bytes held in read buffers beyond the pooled 4 KiB one: large frames and fragmented or compressed messages still arriving, and inflated messages being handled.",
		}, g.ReadBufferBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_takeover_state_bytes",
			Help: "Bytes of compression state kept between messages by connections with context takeover: flate writers and 32 KiB windows.",
		}, g.TakeoverBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_publish_queue_bytes",
			Help: "Bytes of client publications waiting for the broker's confirmation in the connections' publish pipelines.",
		}, g.PublishBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_replay_bytes",
			Help: "Bytes of room history held by history replays (recovering joins): pages read from the engine and live messages held back meanwhile.",
		}, g.ReplayBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_socketio_pending_bytes",
			Help: "Bytes the Socket.IO long-polling sessions that joined no namespace yet are charged: their handshake requests' headers and URL, and 2 KiB each.",
		}, g.SocketIOPendingBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_socketio_polling_sessions",
			Help: "Socket.IO (Engine.IO) sessions on HTTP long-polling.",
		}, g.SocketIOPollingSessions),
	)
}

// RegisterSessionPendingBytes registers the gauge of what the session
// store holds, or (Redis) stored from this node within the session TTL,
// of the unacknowledged messages ended connections left to their
// sessions; f reads it.
func RegisterSessionPendingBytes(reg prometheus.Registerer, f func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_session_pending_bytes",
		Help: "Bytes of unacknowledged messages kept with sessions for the connection that resumes them: held by the in-memory store, or stored in Redis by this node within the session TTL.",
	}, f))
}

// NewHTTPConnsRefused registers and returns the counter of HTTP requests
// the binary refused because their client IP held too many connections.
func NewHTTPConnsRefused(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_http_conns_refused_total",
		Help: "HTTP requests answered 429 because their client IP held --max-http-conns-per-ip connections.",
	})
	reg.MustRegister(c)
	return c
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// the one a Server uses when the embedding application gives none.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
