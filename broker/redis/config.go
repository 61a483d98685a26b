package redis

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/redisopt"
)

// Config configures a Broker. Exactly one of URL and ClusterAddrs is set.
type Config struct {
	// URL of a standalone Redis, redis://[user:password@]host:port/db
	// (rediss:// for TLS).
	URL string
	// ClusterAddrs are seed addresses (host:port) of a Redis Cluster. When
	// set, rooms and control use sharded pub/sub (SSUBSCRIBE/SPUBLISH), so
	// each publication is handled by the one master owning its slot.
	ClusterAddrs []string
	// Password for ClusterAddrs (URL carries its own).
	Password string
	// Prefix of every channel name. Default "herald".
	Prefix string
	// PublishBuffer is how many publications (rooms and control together)
	// are queued while Redis is unreachable and sent, in order, once it is
	// back. Zero makes Publish fail fast with broker.ErrUnavailable. A full
	// buffer also fails with broker.ErrUnavailable.
	PublishBuffer int
	// Logger receives connection state changes and undecodable messages.
	// Default slog.Default().
	Logger *slog.Logger
	// OwnSubscription reports whether a room gets a subscription of its
	// own (a rueidis Receive read by a goroutine of its own) rather than a
	// place on the node's one shared subscriber connection, which also
	// holds the control channel and the user channels. A shared room
	// costs a map entry and a room of its own ≈ 7 KB, but in the
	// three-node bench busy rooms reached a higher ceiling on
	// subscriptions of their own; `herald serve` gives every room its
	// own unless run with --redis-shared-rooms. It is never asked about user rooms, which need no
	// subscription (see the broker package). nil: every room is shared.
	// Ignored in cluster mode, where every room has its own.
	OwnSubscription func(room string) bool
}

// Timing of the connection monitor. Variables so tests may shorten them.
var (
	// healthInterval is how often a healthy connection is pinged, so that a
	// silent outage is noticed even without traffic.
	healthInterval = time.Second
	// retryInterval is how often Redis is pinged while down; it bounds how
	// long after Redis returns the rooms are resubscribed.
	retryInterval = 100 * time.Millisecond
	// pingTimeout bounds one health ping.
	pingTimeout = time.Second
	// flushSettle is how long the flusher waits after this node has
	// resubscribed, to give other nodes (which ping at retryInterval) time
	// to resubscribe before buffered messages go out.
	flushSettle = 2 * retryInterval
	// maxResubscribeWait bounds how long the flusher waits for this node's
	// own subscriptions to come back.
	maxResubscribeWait = 2 * time.Second
)

func (c *Config) clientOption() (rueidis.ClientOption, error) {
	opt, err := redisopt.Options(c.URL, c.ClusterAddrs, c.Password)
	if err != nil {
		return opt, fmt.Errorf("redis broker: %w", err)
	}
	// Resubscription and publish buffering are ours: retrying inside the
	// client would hide outages from Health and reorder publications.
	opt.DisableRetry = true
	opt.Dialer = net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return opt, nil
}
