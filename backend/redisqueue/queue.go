// Package redisqueue is a backend.Queue in Redis: a node's webhook events
// survive the node, and once its lease lapses another node posts them,
// followed by a disconnected event for every connection the dead node
// still held.
//
// Keys (one hash slot, so that a Redis Cluster runs the scripts):
// <prefix>:{events}:nodes, a set of the nodes with a queue;
// <prefix>:{events}:lease:<node>, renewed by Maintain with a TTL;
// <prefix>:{events}:q:<node>, the node's events in order (a list);
// <prefix>:{events}:open:<node>, a hash from each open connection's id to
// the disconnected event to post if the node dies;
// <prefix>:{events}:bytes:<node>, the bytes the node's list and open hash
// hold (their values), kept by the scripts that change them, so that
// Push can refuse what would take the node past Config.MaxBytes without
// reading the list.
//
// A takeover is one script: it checks that the dead node's lease is
// still gone, appends its queue and its open connections' disconnected
// events to the live node's queue, and deletes the dead node's keys, so
// two nodes never both take the same queue. An event being posted when
// its node died is posted again by the taker: events are at least once,
// with the same idempotency key.
//
// Concurrency: safe for concurrent use.
package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/internal/redisopt"
)

// Config configures a Queue. Exactly one of URL and ClusterAddrs is set.
type Config struct {
	URL          string
	ClusterAddrs []string
	Password     string
	// Prefix of every key. Default "herald".
	Prefix string
	// Node names this node's queue; it must be unique per process run
	// (a restarted node must not take its previous run's lease).
	Node string
	// LeaseTTL is how long the node's queue outlives it before another
	// node takes it over. Default 10s.
	LeaseTTL time.Duration
	// MaxLen bounds the node's queue; Push fails with
	// backend.ErrQueueFull over it. Takeovers are not bounded (a dead
	// node's events are not dropped). Default 100000.
	MaxLen int
	// MaxBytes bounds the bytes the node's queue holds in Redis: its
	// events and the disconnected events kept for its open connections
	// (each carries the connection's data from the connect hook, up to
	// 1 MiB, so MaxLen alone bounds nothing in bytes). Push fails with
	// backend.ErrQueueFull when the event would take the queue over it
	// (the event is not queued, nor its open entry kept). A takeover
	// counts what it moves, and is not refused. Default
	// backend.DefaultEventsQueueBytes (64 MiB).
	MaxBytes int64
}

// Queue is a backend.Queue in Redis. Create it with New.
type Queue struct {
	cfg    Config
	client rueidis.Client
	base   string // "<prefix>:{events}:"
}

var (
	_ backend.Queue      = (*Queue)(nil)
	_ backend.QueueBytes = (*Queue)(nil)
)

// New connects to Redis.
func New(cfg Config) (*Queue, error) {
	if cfg.Node == "" {
		return nil, errors.New("redisqueue: Node is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "herald"
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = backend.DefaultLeaseTTL
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = backend.DefaultEventsQueue
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = backend.DefaultEventsQueueBytes
	}
	opt, err := redisopt.Options(cfg.URL, cfg.ClusterAddrs, cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("redisqueue: %w", err)
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redisqueue: %w", err)
	}
	return &Queue{cfg: cfg, client: client, base: cfg.Prefix + ":{events}:"}, nil
}

func (q *Queue) nodes() string         { return q.base + "nodes" }
func (q *Queue) lease(n string) string { return q.base + "lease:" + n }
func (q *Queue) list(n string) string  { return q.base + "q:" + n }
func (q *Queue) open(n string) string  { return q.base + "open:" + n }
func (q *Queue) bytes(n string) string { return q.base + "bytes:" + n }
func (q *Queue) millis() string        { return strconv.FormatInt(q.cfg.LeaseTTL.Milliseconds(), 10) }
func (q *Queue) keys(n string) []string {
	return []string{q.list(n), q.open(n), q.nodes(), q.lease(n), q.bytes(n)}
}

// pushScript appends an event unless the queue is full (in events, or in
// bytes with what the connection's open entry changes), and records or
// forgets the connection's open entry. KEYS: list, open, nodes, lease,
// bytes. ARGV: body, max, conn, open body ("" for none), closed ("1"),
// node, lease ms, max bytes. A bytes count below zero (kept by a node
// that did not count) is taken as zero.
var pushScript = rueidis.NewLuaScript(`
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local old = redis.call('HSTRLEN', KEYS[2], ARGV[3])
local new = old
if ARGV[4] ~= '' then new = #ARGV[4] end
if ARGV[5] == '1' then new = 0 end
local grow = #ARGV[1] + new - old
local held = math.max(tonumber(redis.call('GET', KEYS[5]) or '0'), 0)
if grow > 0 and held + grow > tonumber(ARGV[8]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
if ARGV[5] == '1' then redis.call('HDEL', KEYS[2], ARGV[3]) end
redis.call('SET', KEYS[5], held + grow)
if redis.call('SADD', KEYS[3], ARGV[6]) == 1 or redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[7])
end
return 1`)

// Push implements backend.Queue.
func (q *Queue) Push(ctx context.Context, e backend.QueuedEvent) error {
	closed := ""
	if e.Closed {
		closed = "1"
	}
	n, err := pushScript.Exec(ctx, q.client, q.keys(q.cfg.Node),
		[]string{string(e.Body), strconv.Itoa(q.cfg.MaxLen), e.ConnID, string(e.Open), closed, q.cfg.Node, q.millis(),
			strconv.FormatInt(q.cfg.MaxBytes, 10)}).AsInt64()
	if err != nil {
		return fmt.Errorf("redisqueue: push: %w", err)
	}
	if n == 0 {
		return backend.ErrQueueFull
	}
	return nil
}

// Peek implements backend.Queue.
func (q *Queue) Peek(ctx context.Context, max int) ([][]byte, error) {
	items, err := q.client.Do(ctx, q.client.B().Lrange().Key(q.list(q.cfg.Node)).Start(0).Stop(int64(max-1)).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("redisqueue: peek: %w", err)
	}
	out := make([][]byte, len(items))
	for i, s := range items {
		out[i] = []byte(s)
	}
	return out, nil
}

// ackScript removes the first ARGV[1] events and uncounts their bytes.
// KEYS: list, open, bytes. An empty queue (no events, no open entries)
// holds nothing: its count is reset, so that a count a node without it
// left behind heals.
var ackScript = rueidis.NewLuaScript(`
local freed = 0
for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do freed = freed + #v end
redis.call('LTRIM', KEYS[1], ARGV[1], -1)
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[3])
else
  redis.call('SET', KEYS[3], math.max(tonumber(redis.call('GET', KEYS[3]) or '0') - freed, 0))
end
return freed`)

// Ack implements backend.Queue.
func (q *Queue) Ack(ctx context.Context, n int) error {
	n0 := q.cfg.Node
	if err := ackScript.Exec(ctx, q.client, []string{q.list(n0), q.open(n0), q.bytes(n0)}, []string{strconv.Itoa(n)}).Error(); err != nil {
		return fmt.Errorf("redisqueue: ack: %w", err)
	}
	return nil
}

// Bytes implements backend.QueueBytes: the bytes this node's queue holds
// in Redis (see Config.MaxBytes).
func (q *Queue) Bytes(ctx context.Context) (int64, error) {
	n, err := q.client.Do(ctx, q.client.B().Get().Key(q.bytes(q.cfg.Node)).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisqueue: bytes: %w", err)
	}
	return max(n, 0), nil
}

// Len implements backend.Queue.
func (q *Queue) Len(ctx context.Context) (int, error) {
	n, err := q.client.Do(ctx, q.client.B().Llen().Key(q.list(q.cfg.Node)).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisqueue: len: %w", err)
	}
	return int(n), nil
}

// takeoverScript moves a dead node's queue and open connections to the
// taker's queue, and their bytes to the taker's count. KEYS: dead lease,
// dead list, dead open, taker list, nodes, dead bytes, taker bytes.
// ARGV: dead node. Returns the events moved, or -1 when the lease is
// alive.
var takeoverScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local n, moved = 0, 0
local items = redis.call('LRANGE', KEYS[2], 0, -1)
for _, v in ipairs(items) do redis.call('RPUSH', KEYS[4], v); n = n + 1; moved = moved + #v end
local open = redis.call('HVALS', KEYS[3])
for _, v in ipairs(open) do redis.call('RPUSH', KEYS[4], v); n = n + 1; moved = moved + #v end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[6])
if moved > 0 then
  redis.call('SET', KEYS[7], math.max(tonumber(redis.call('GET', KEYS[7]) or '0'), 0) + moved)
end
redis.call('SREM', KEYS[5], ARGV[1])
return n`)

// Maintain implements backend.Queue: it renews this node's lease and
// takes over the queues of nodes whose lease is gone.
func (q *Queue) Maintain(ctx context.Context) (int, error) {
	b := q.client.B()
	for _, r := range q.client.DoMulti(ctx,
		b.Set().Key(q.lease(q.cfg.Node)).Value("1").Px(q.cfg.LeaseTTL).Build(),
		b.Sadd().Key(q.nodes()).Member(q.cfg.Node).Build(),
	) {
		if err := r.Error(); err != nil {
			return 0, fmt.Errorf("redisqueue: lease: %w", err)
		}
	}
	nodes, err := q.client.Do(ctx, b.Smembers().Key(q.nodes()).Build()).AsStrSlice()
	if err != nil {
		return 0, fmt.Errorf("redisqueue: nodes: %w", err)
	}
	taken := 0
	for _, n := range nodes {
		if n == q.cfg.Node {
			continue
		}
		moved, err := takeoverScript.Exec(ctx, q.client,
			[]string{q.lease(n), q.list(n), q.open(n), q.list(q.cfg.Node), q.nodes(), q.bytes(n), q.bytes(q.cfg.Node)}, []string{n}).AsInt64()
		if err != nil {
			return taken, fmt.Errorf("redisqueue: takeover of %s: %w", n, err)
		}
		if moved > 0 {
			taken += int(moved)
		}
	}
	return taken, nil
}

// releaseScript forgets a node whose queue is empty and that has no open
// connections. KEYS: list, open, lease, nodes, bytes. ARGV: node.
var releaseScript = rueidis.NewLuaScript(`
if redis.call('LLEN', KEYS[1]) > 0 or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[3], KEYS[5])
redis.call('SREM', KEYS[4], ARGV[1])
return 1`)

// Close implements backend.Queue: a node that leaves with nothing queued
// and no connection open is forgotten at once; otherwise its lease runs
// out and another node takes its queue over.
func (q *Queue) Close(ctx context.Context, empty bool) error {
	defer q.client.Close()
	if !empty {
		return nil
	}
	n := q.cfg.Node
	if err := releaseScript.Exec(ctx, q.client, []string{q.list(n), q.open(n), q.lease(n), q.nodes(), q.bytes(n)}, []string{n}).Error(); err != nil {
		return fmt.Errorf("redisqueue: release: %w", err)
	}
	return nil
}
