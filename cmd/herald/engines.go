package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/backend/redisqueue"
	natsbroker "github.com/heraldrt/herald/broker/nats"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/id"
	redissession "github.com/heraldrt/herald/session/redis"
)

// engineConfig selects the engines between nodes. Empty: the embedded
// in-memory engines (one node).
type engineConfig struct {
	redisURL      string
	redisCluster  []string
	redisPassword string
	natsURL       string
	publishBuffer int
	sharedRooms   bool // rooms on the shared subscriber connection (standalone Redis)
}

// validate rejects flag combinations that name no engine setup; serve
// checks them with the other flags, so that they exit 2 like any invalid
// configuration rather than 1 like an unreachable Redis.
func (ec engineConfig) validate() error {
	if ec.redisURL != "" && len(ec.redisCluster) > 0 {
		return errors.New("--redis-url and --redis-cluster are exclusive")
	}
	if ec.sharedRooms && (ec.redisURL == "" || ec.natsURL != "") {
		return errors.New("--redis-shared-rooms needs --redis-url as the broker (Redis Cluster gives every room a subscription of its own)")
	}
	return nil
}

// wire sets the broker, session store and presence registry of cfg from
// ec. Redis (standalone or cluster) provides all three; NATS carries
// messages only, so with NATS alone sessions and presence stay per node,
// unless Redis is configured too.
func (ec engineConfig) wire(cfg *herald.Config, logger *slog.Logger) (closeAll func(), err error) {
	if ec.natsURL != "" && cfg.Broker != nil {
		return func() {}, errors.New("broker already set")
	}
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	if err := ec.validate(); err != nil {
		return closeAll, err
	}
	useRedis := ec.redisURL != "" || len(ec.redisCluster) > 0
	if useRedis {
		rc := redissession.Config{URL: ec.redisURL, ClusterAddrs: ec.redisCluster, Password: ec.redisPassword,
			// What ended connections leave for their sessions is bounded
			// like what live ones hold (0: the same defaults).
			MaxPendingBytes: cfg.MaxPendingAckBytes, MaxNodePendingBytes: cfg.MaxNodePendingAckBytes}
		st, err := redissession.New(rc)
		if err != nil {
			return closeAll, err // it says "redis session store: ..."
		}
		closers = append(closers, func() { _ = st.Close() })
		// On the store's connections: a new connection's session and
		// presence entry then go to Redis in one round trip.
		pr := st.Presence(rc.PresenceRoomTTL)
		closers = append(closers, func() { _ = pr.Close() })
		rv, err := redissession.NewRevocations(rc)
		if err != nil {
			return closeAll, fmt.Errorf("redis revocations: %w", err)
		}
		closers = append(closers, func() { _ = rv.Close() })
		cfg.Sessions, cfg.Presence, cfg.Revocations = st, pr, rv
	}
	switch {
	case ec.natsURL != "":
		b, err := natsbroker.New(natsbroker.Config{URL: ec.natsURL, PublishBufferBytes: ec.publishBuffer * 1024, Logger: logger})
		if err != nil {
			return closeAll, fmt.Errorf("nats broker: %w", err)
		}
		cfg.Broker = b
		if !useRedis {
			logger.Warn("NATS carries messages between nodes, but without --redis-url sessions and presence are per node: a client can resume only on the node it left")
		}
	case useRedis:
		b, err := redisbroker.New(redisbroker.Config{URL: ec.redisURL, ClusterAddrs: ec.redisCluster,
			Password: ec.redisPassword, PublishBuffer: ec.publishBuffer, Logger: logger,
			// By default every room gets a subscription of its own (busy
			// rooms reached a higher ceiling that way, see
			// docs/benchmarks.md); --redis-shared-rooms keeps them all on
			// the shared connection. User rooms, one per connection, need
			// none: they travel on the user channels of the shared
			// connection.
			OwnSubscription: func(string) bool { return !ec.sharedRooms }})
		if err != nil {
			return closeAll, fmt.Errorf("redis broker: %w", err)
		}
		cfg.Broker = b
	}
	// On success the Server owns and closes all of it; closeAll is for a
	// start that fails before the Server exists.
	return closeAll, nil
}

// name describes the engine for the start-up log line.
func (ec engineConfig) name() string {
	switch {
	case ec.natsURL != "":
		return "nats"
	case len(ec.redisCluster) > 0:
		return "redis-cluster"
	case ec.redisURL != "" && ec.sharedRooms:
		return "redis (rooms on the shared subscriber connection)"
	case ec.redisURL != "":
		return "redis"
	}
	return "memory"
}

// eventsQueue returns the queue of the backend's webhooks: nil (the
// proxy's memory queue) without Redis; with Redis, one that survives
// this node and that the other nodes take over when its lease lapses.
func (ec engineConfig) eventsQueue(node string, lease time.Duration, max int, maxBytes int64) (backend.Queue, error) {
	if ec.redisURL == "" && len(ec.redisCluster) == 0 {
		return nil, nil
	}
	q, err := redisqueue.New(redisqueue.Config{URL: ec.redisURL, ClusterAddrs: ec.redisCluster, Password: ec.redisPassword,
		Node: node + "." + id.New(5), LeaseTTL: lease, MaxLen: max, MaxBytes: maxBytes})
	if err != nil {
		return nil, fmt.Errorf("redis events queue: %w", err)
	}
	return q, nil
}
