package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldrt/herald/session"
	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/redisopt"
)

// Config configures a Store. Exactly one of URL and ClusterAddrs is set.
type Config struct {
	// URL of a standalone Redis, redis://[user:password@]host:port/db.
	URL string
	// ClusterAddrs are seed addresses (host:port) of a Redis Cluster.
	ClusterAddrs []string
	// Password for ClusterAddrs (URL carries its own).
	Password string
	// Prefix of every key. Default "herald".
	Prefix string
	// Client, when set, is used instead of connecting to URL or
	// ClusterAddrs (then ignored): to share a client, or to wrap one (to
	// trace or count round trips). Closing the Store (or a Presence
	// made with it) leaves it open.
	Client rueidis.Client
	// PresenceRoomTTL is how long a presence room hash (see Presence)
	// outlives the last sign of life of this process's entries in it:
	// KeepAlive renews it for the rooms where the process has entries,
	// every half of it. It bounds how long a hash that nobody lists keeps
	// the entries of nodes that died. Default 24h.
	PresenceRoomTTL time.Duration
	// MaxPendingBytes bounds the pending messages (see
	// session.PendingStore) a session keeps, in bytes of their frames
	// (Redis holds about 4/3 of it: the frames are base64 in JSON):
	// AddPending keeps the newest within it (the newest one whatever its
	// size, as a connection may hold one larger message when it holds
	// nothing else) and drops the others, recording the loss for the
	// connection that resumes the session. Default DefaultMaxPendingBytes
	// (4 MiB, what one connection may leave unacknowledged).
	MaxPendingBytes int64
	// MaxNodePendingBytes bounds the bytes of pending messages' frames
	// this Store stores within their session TTL, all sessions together:
	// over it AddPending stores only the record of their loss and returns
	// ErrPendingFull. It is what one node can make Redis hold (about 4/3
	// of it; a Store cannot see what other nodes take, so what was taken
	// still counts until its TTL passes). Default
	// DefaultMaxNodePendingBytes (256 MiB).
	MaxNodePendingBytes int64
}

// Store is a Redis-backed session.Store. Create it with New.
type Store struct {
	prefix string
	client rueidis.Client
	own    bool // Close closes client

	maxPendingBytes, maxNodePendingBytes int64
	nodePending                          ledger // what AddPending stored, within its TTL
}

var _ session.Store = (*Store)(nil)

// touchScript updates lastSeen and the TTL of an existing session only.
var touchScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lastSeen', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

// resumeScript swaps the resume token of a session whose token (ARGV[1])
// and user (ARGV[2]) match, and returns the session's fields; 0 when it is
// missing, -1 when they do not match. One script, so that of concurrent
// resumes with one token exactly one sees its token.
var resumeScript = rueidis.NewLuaScript(`
local f = redis.call('HMGET', KEYS[1], 'resumeToken', 'user')
if not f[1] then return 0 end
if f[1] ~= ARGV[1] or f[2] ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], 'resumeToken', ARGV[3])
return redis.call('HGETALL', KEYS[1])`)

// New connects to Redis. It fails if Redis cannot be reached.
func New(cfg Config) (*Store, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "herald"
	}
	st := &Store{prefix: prefix + ":session:", client: cfg.Client,
		maxPendingBytes: cfg.MaxPendingBytes, maxNodePendingBytes: cfg.MaxNodePendingBytes}
	if st.maxPendingBytes <= 0 {
		st.maxPendingBytes = DefaultMaxPendingBytes
	}
	if st.maxNodePendingBytes <= 0 {
		st.maxNodePendingBytes = DefaultMaxNodePendingBytes
	}
	if st.client != nil {
		return st, nil
	}
	opt, err := redisopt.Options(cfg.URL, cfg.ClusterAddrs, cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("redis session store: %w", err)
	}
	if st.client, err = rueidis.NewClient(opt); err != nil {
		return nil, fmt.Errorf("redis session store: %w", err)
	}
	st.own = true
	return st, nil
}

func (st *Store) key(id string) string { return st.prefix + id }

// millis converts a TTL for PEXPIRE, rounding a positive sub-millisecond
// TTL up rather than to "expire now".
func millis(ttl time.Duration) int64 {
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1
	}
	return ms
}

func formatTime(t time.Time) string { return t.Format(time.RFC3339Nano) }

// Save implements session.Store.
func (st *Store) Save(ctx context.Context, s *session.Session, ttl time.Duration) error {
	cmds, err := st.saveCmds(s, ttl)
	if err != nil {
		return err
	}
	for _, r := range st.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis session store: save %s: %w", s.ID, err)
		}
	}
	return nil
}

// saveCmds are the commands of Save: the session's hash replaced and its
// TTL set, in one transaction.
func (st *Store) saveCmds(s *session.Session, ttl time.Duration) (rueidis.Commands, error) {
	rooms, err := json.Marshal(s.Rooms)
	if err != nil {
		return nil, fmt.Errorf("redis session store: encode rooms: %w", err)
	}
	key := st.key(s.ID)
	b := st.client.B()
	return rueidis.Commands{
		b.Multi().Build(),
		b.Del().Key(key).Build(),
		b.Hset().Key(key).FieldValue().
			FieldValue("user", s.UserID).
			FieldValue("node", s.Node).
			FieldValue("conn", s.Conn).
			FieldValue("resumeToken", s.ResumeToken).
			FieldValue("rooms", string(rooms)).
			FieldValue("connectedAt", formatTime(s.ConnectedAt)).
			FieldValue("lastSeen", formatTime(s.LastSeen)).Build(),
		b.Pexpire().Key(key).Milliseconds(millis(ttl)).Build(),
		b.Exec().Build(),
	}, nil
}

// Get implements session.Store.
func (st *Store) Get(ctx context.Context, id string) (*session.Session, error) {
	fields, err := st.client.Do(ctx, st.client.B().Hgetall().Key(st.key(id)).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis session store: get %s: %w", id, err)
	}
	if len(fields) == 0 {
		return nil, session.ErrNotFound
	}
	return parseSession(id, fields)
}

// Resume implements session.Store.
func (st *Store) Resume(ctx context.Context, id, user, token, next string) (*session.Session, error) {
	res := resumeScript.Exec(ctx, st.client, []string{st.key(id)}, []string{token, user, next})
	if n, err := res.AsInt64(); err == nil {
		if n == 0 {
			return nil, session.ErrNotFound
		}
		return nil, session.ErrMismatch
	}
	fields, err := res.AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis session store: resume %s: %w", id, err)
	}
	return parseSession(id, fields)
}

// parseSession builds session id from its hash fields.
func parseSession(id string, fields map[string]string) (*session.Session, error) {
	var err error
	s := &session.Session{ID: id, UserID: fields["user"], Node: fields["node"],
		Conn: fields["conn"], ResumeToken: fields["resumeToken"]}
	if err := json.Unmarshal([]byte(fields["rooms"]), &s.Rooms); err != nil {
		return nil, fmt.Errorf("redis session store: get %s: rooms: %w", id, err)
	}
	if s.ConnectedAt, err = time.Parse(time.RFC3339Nano, fields["connectedAt"]); err != nil {
		return nil, fmt.Errorf("redis session store: get %s: connectedAt: %w", id, err)
	}
	if s.LastSeen, err = time.Parse(time.RFC3339Nano, fields["lastSeen"]); err != nil {
		return nil, fmt.Errorf("redis session store: get %s: lastSeen: %w", id, err)
	}
	return s, nil
}

// Touch implements session.Store.
func (st *Store) Touch(ctx context.Context, id string, lastSeen time.Time, ttl time.Duration) error {
	n, err := touchScript.Exec(ctx, st.client, []string{st.key(id)},
		[]string{formatTime(lastSeen), strconv.FormatInt(millis(ttl), 10)}).AsInt64()
	if err != nil {
		return fmt.Errorf("redis session store: touch %s: %w", id, err)
	}
	if n == 0 {
		return session.ErrNotFound
	}
	return nil
}

// Delete implements session.Store.
func (st *Store) Delete(ctx context.Context, id string) error {
	// Its pending messages go with it (separate keys, so that Redis
	// Cluster may hold them on different slots).
	// One round trip: one DEL each, pipelined.
	b := st.client.B()
	for _, r := range st.client.DoMulti(ctx, b.Del().Key(st.key(id)).Build(), b.Del().Key(st.pendingKey(id)).Build()) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis session store: delete %s: %w", id, err)
		}
	}
	return nil
}

// Close implements session.Store.
func (st *Store) Close() error {
	if st.own {
		st.client.Close()
	}
	return nil
}
