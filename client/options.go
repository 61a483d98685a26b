package client

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/heraldrt/herald/protocol"
)

// Defaults used when an Option is not given.
const (
	DefaultReconnectMin = 250 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	DefaultAckInterval  = 500 * time.Millisecond
	DefaultAckMax       = 64
	DefaultReadLimit    = 2 << 20
	// DefaultQueueBytes is the default of WithQueueBytes.
	DefaultQueueBytes = 16 << 20
	// DefaultHandshakeTimeout is the default of WithHandshakeTimeout.
	DefaultHandshakeTimeout = 30 * time.Second
)

// Option configures a Client in Dial.
type Option func(*options)

type options struct {
	token      func(ctx context.Context) (string, error)
	header     http.Header
	clientID   string
	minBackoff time.Duration
	maxBackoff time.Duration
	ackEvery   time.Duration
	ackMax     int
	onState    func(State)
	onFrame    func(frame []byte)
	onRecovery func(room string, recovered bool)
	onGap      func(room string)
	log        *slog.Logger
	httpClient *http.Client
	readLimit  int64
	queueBytes int64
	// handshakeTimeout bounds one connection attempt, and the re-joins
	// on a new connection.
	handshakeTimeout time.Duration
	onEvent          []func(Event) // WithEventHandler
}

func defaultOptions() options {
	return options{
		minBackoff: DefaultReconnectMin,
		maxBackoff: DefaultReconnectMax,
		ackEvery:   DefaultAckInterval,
		ackMax:     DefaultAckMax,
		log:        slog.New(slog.DiscardHandler),
		readLimit:  DefaultReadLimit,
		queueBytes: DefaultQueueBytes,

		handshakeTimeout: DefaultHandshakeTimeout,
	}
}

// WithTokenProvider sets where the bearer token comes from. It is called
// before every connection attempt, so it can refresh an expiring token; its
// result is sent as "Authorization: Bearer <token>". An error fails that
// attempt (Dial returns it; a reconnect backs off and tries again).
func WithTokenProvider(f func(ctx context.Context) (string, error)) Option {
	return func(o *options) { o.token = f }
}

// WithHeader adds headers to every upgrade request.
func WithHeader(h http.Header) Option {
	return func(o *options) {
		if o.header == nil {
			o.header = http.Header{}
		}
		for k, vs := range h {
			for _, v := range vs {
				o.header.Add(k, v)
			}
		}
	}
}

// WithClientID sends id as X-Client-Id: the user id in the server's
// anonymous mode.
func WithClientID(id string) Option {
	return func(o *options) { o.clientID = id }
}

// WithReconnect bounds the delay before a reconnect attempt: attempt n waits
// a random time between 0 and min·2ⁿ, capped at max ("full jitter", so that
// clients cut at the same moment do not come back together). Defaults
// 250ms and 30s. An upgrade the server refused with a Retry-After (503
// overloaded or draining, 429) is not tried again before it: attempt n
// then waits Retry-After plus a random time between 0 and the larger of
// Retry-After and min·2ⁿ (capped at max), so that the clients refused
// together spread out. A Retry-After counts up to 10 minutes, even past
// max.
func WithReconnect(minDelay, maxDelay time.Duration) Option {
	return func(o *options) {
		if minDelay > 0 {
			o.minBackoff = minDelay
		}
		if maxDelay >= o.minBackoff {
			o.maxBackoff = maxDelay
		} else {
			o.maxBackoff = o.minBackoff
		}
	}
}

// WithHandshakeTimeout bounds one connection attempt: the TCP (and TLS)
// connect, the upgrade and the server's welcome, and on a reconnect the
// joins of the remembered rooms that follow. An attempt that takes longer
// is abandoned and, after a backoff, made again (for Dial: Dial fails).
// Default 30s. Keep it well above what a busy server takes to answer: a
// handshake abandoned while the server is still working on it costs the
// server that work for nothing, and the retry costs it again, which is
// how a reconnect storm feeds itself on a slow server. A server that is
// too busy answers 503 with a Retry-After at once instead (see
// WithReconnect). Dial's ctx can end the first attempt sooner.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithAckBatch sets how acknowledgements of messages published with ack are
// batched: they are sent every interval, or as soon as max are pending.
// Defaults 500ms and 64; max is capped at the protocol's 1024
// (protocol.MaxAckIDs).
func WithAckBatch(interval time.Duration, maxIDs int) Option {
	return func(o *options) {
		if interval > 0 {
			o.ackEvery = interval
		}
		if maxIDs > 0 {
			o.ackMax = min(maxIDs, protocol.MaxAckIDs)
		}
	}
}

// WithEventHandler registers f for every event, as OnAny does, before the
// first connection: events to the user's own room (direct messages) can
// come right after the welcome, before Dial returns and so before any
// handler registered with On or OnAny afterwards, which would miss them.
// It may be given more than once; handlers run in the order given, before
// those registered later.
func WithEventHandler(f func(Event)) Option {
	return func(o *options) {
		if f != nil {
			o.onEvent = append(o.onEvent, f)
		}
	}
}

// WithStateHandler is called on the dispatch goroutine with every state
// change, in order with the events around it.
func WithStateHandler(f func(State)) Option {
	return func(o *options) { o.onState = f }
}

// WithRecoveryHandler is called on the dispatch goroutine after every
// join that recovered a room that keeps history from the Client's last
// position (on each reconnect, for each such room), after the events
// the server replayed. recovered false means the server could not give
// back everything the Client missed (its history no longer holds it, or
// was lost): the application should fetch the room's state again.
func WithRecoveryHandler(f func(room string, recovered bool)) Option {
	return func(o *options) { o.onRecovery = f }
}

// WithGapHandler is called on the dispatch goroutine when the server says
// the Client may have missed messages of room that history cannot give
// back: the server's node lost its broker subscription to a room without
// history, or, after a reconnect that resumed the session, for each room
// the server joined again without a replay (rooms without history) and
// for the user room, since nothing held what was published to them
// meanwhile. The application should fetch the room's state again.
func WithGapHandler(f func(room string)) Option {
	return func(o *options) { o.onGap = f }
}

// WithFrameHandler is called on the dispatch goroutine with every frame the
// server sends (welcome, event, reply, error, server_shutdown, and
// redelivered events too), raw, in arrival order, before the event handlers
// see it. It is meant for tools and debugging; frame must not be kept after
// the call returns.
func WithFrameHandler(f func(frame []byte)) Option {
	return func(o *options) { o.onFrame = f }
}

// WithLogger receives the Client's logs (connects, disconnects, reconnect
// delays). Default: discarded.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithHTTPClient sets the http.Client used for upgrade requests, for
// custom TLS, proxies or dialers. Its Timeout, if any, bounds each
// handshake.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = c }
}

// WithReadLimit bounds the size of one server frame, after decompression;
// a larger one closes the connection (1009) and the Client reconnects.
// Default 2 MiB.
func WithReadLimit(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.readLimit = n
		}
	}
}

// WithQueueBytes bounds the bytes of the frames read and waiting for the
// handlers (which run one at a time), besides the 1,024 frames that may
// wait: a server sending faster than the handlers take its frames makes
// the Client stop reading there, so that the server's send queue fills
// and the server disconnects it as a slow consumer (4008; the Client
// reconnects). One frame larger than n is let in when none waits.
// Default 16 MiB.
func WithQueueBytes(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.queueBytes = n
		}
	}
}

// PublishOption modifies one Publish call.
type PublishOption func(*protocol.Request)

// WithAck asks every recipient to acknowledge the message; the server
// redelivers it to those that do not.
func WithAck() PublishOption {
	return func(r *protocol.Request) { r.Ack = true }
}

// WithIdempotencyKey sets the publish's idempotency key (at most 128
// bytes of printable ASCII): in a room that keeps history, publishing
// again with the same key (a retry after an error or a reconnect) is
// stored and delivered once, and answered with the first one's msgId.
func WithIdempotencyKey(key string) PublishOption {
	return func(r *protocol.Request) { r.IdempotencyKey = key }
}
