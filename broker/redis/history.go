package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/redis/rueidis"
)

// History: each room with a history policy has, in its hash slot (the
// room is the hash tag, as for its channel):
//
//	<prefix>:hist:{<room>}:m  hash: e (epoch), n (newest offset), i and o
//	                          (the newest message's msgId and offset; o
//	                          differs from n after publishes of a node too
//	                          old to write them)
//	<prefix>:hist:{<room>}:s  stream: one entry per message, ID <offset>-0,
//	                          field m: the message's JSON (with offset and epoch)
//	<prefix>:hist:{<room>}:k  sorted set: idempotency keys, scored by offset
//
// One script stores, numbers and publishes a message atomically, so the
// channel carries a room's messages in offset order.

// publishScript: KEYS meta, stream, keys; ARGV channel, JSON without its
// opening brace, size, TTL in ms (0: none), idempotency key, a new
// epoch (used if the room has none), "1" for SPUBLISH, msgId.
// It returns {offset, epoch, msgId of the stored twin or ""}.
//
// Idempotency keys are a sorted set scored by offset: a key whose
// message is still in the stream names a twin; keys of trimmed
// messages are removed as publishes with a key go by (O(log n) each).
const publishScript = `
local meta = redis.call('HMGET', KEYS[1], 'e', 'n')
local epoch = meta[1]
local n = 0
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2], KEYS[3])
else
  n = tonumber(meta[2]) or 0
end
local size = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if ARGV[5] ~= '' then
  local prev = redis.call('ZSCORE', KEYS[3], ARGV[5])
  if prev then
    local e = redis.call('XRANGE', KEYS[2], prev .. '-0', prev .. '-0')
    if #e == 1 then
      return {tonumber(prev), epoch, cjson.decode(e[1][2][2]).msgId}
    end
  end
end
n = n + 1
redis.call('HSET', KEYS[1], 'e', epoch, 'n', n, 'i', ARGV[8], 'o', n)
local payload = '{"offset":' .. n .. ',"epoch":"' .. epoch .. '",' .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, n .. '-0', 'm', payload)
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[3], n, ARGV[5])
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  local min = tonumber(string.match(first[1][1], '^(%d+)'))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. min)
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
if ARGV[7] == '1' then
  redis.call('SPUBLISH', ARGV[1], payload)
else
  redis.call('PUBLISH', ARGV[1], payload)
end
return {n, epoch, ''}
`

// sinceScript: KEYS meta, stream, keys; ARGV first stream ID wanted (""
// for none), count (0: all), a new epoch (used if the room has none, or
// if its history went back), TTL in ms, and the epoch, offset and msgId
// ("" if unknown) of a position this node was handed by the engine
// itself ("", "0", "" otherwise). It returns {epoch, newest offset,
// entries, msgId of the newest message ("" if unknown)}.
//
// A room whose newest offset is below such a position, in its epoch, or
// whose message at that offset is another one, had its history rolled
// back (Redis came back from a snapshot older than the messages since,
// or a replica that was behind took over) and its offsets given again:
// every node and client that saw the old messages would take the new
// ones for repeats. It starts a new epoch instead, as if its history
// were lost, so that they are told. A client's position is not trusted
// for this: anyone could send one past the newest.
const sinceScript = `
local e = redis.call('HMGET', KEYS[1], 'e', 'n', 'i', 'o')
local rolled = false
if e[1] and ARGV[5] ~= '' and e[1] == ARGV[5] then
  local at = tonumber(ARGV[6])
  if tonumber(e[2]) < at then
    rolled = true
  elseif ARGV[7] ~= '' and at > 0 then
    local x = redis.call('XRANGE', KEYS[2], ARGV[6] .. '-0', ARGV[6] .. '-0')
    rolled = #x == 1 and cjson.decode(x[1][2][2]).msgId ~= ARGV[7]
  end
end
if (not e[1]) or rolled then
  e = {ARGV[3], '0'}
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HDEL', KEYS[1], 'i', 'o')
  redis.call('HSET', KEYS[1], 'e', ARGV[3], 'n', 0)
  if tonumber(ARGV[4]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
end
local entries = {}
if ARGV[1] ~= '' then
  if tonumber(ARGV[2]) > 0 then
    entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])
  else
    entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+')
  end
end
local newest = ''
if e[3] and e[4] == e[2] then
  newest = e[3]
end
return {e[1], e[2], entries, newest}
`

var (
	publishLua  = rueidis.NewLuaScript(publishScript)
	publishSha1 = fmt.Sprintf("%x", sha1.Sum([]byte(publishScript)))
	sinceLua    = rueidis.NewLuaScript(sinceScript)
)

var _ broker.Historian = (*Broker)(nil)

// SetHistory implements broker.Historian.
func (b *Broker) SetHistory(f broker.HistoryFunc) { b.history = f }

// policy returns room's history policy; Size 0 for none.
func (b *Broker) policy(room string) broker.HistoryPolicy {
	if b.history == nil || protocol.IsUserRoom(room) {
		return broker.HistoryPolicy{}
	}
	return b.history(room)
}

func (b *Broker) histKeys(room string) []string {
	base := b.cfg.Prefix + ":hist:{" + room + "}:"
	return []string{base + "m", base + "s", base + "k"}
}

func newEpoch() string { return rand.Text()[:12] }

// storedPublish is one publication to a room with history.
type storedPublish struct {
	m    *broker.Message
	keys []string
	args []string
}

// prepareStored encodes m for publishScript.
func (b *Broker) prepareStored(m *broker.Message, p broker.HistoryPolicy) (*storedPublish, error) {
	m.Offset, m.Epoch = 0, ""
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("redis broker: encode: %w", err)
	}
	cluster := "0"
	if b.cluster {
		cluster = "1"
	}
	return &storedPublish{m: m, keys: b.histKeys(m.Room), args: []string{
		b.roomChannel(m.Room), string(payload[1:]), strconv.Itoa(p.Size),
		strconv.FormatInt(p.TTL.Milliseconds(), 10), m.IdempotencyKey, newEpoch(), cluster, m.MsgID,
	}}, nil
}

// stored reads publishScript's reply into sp.m.
func (sp *storedPublish) stored(r rueidis.RedisResult) error {
	vals, err := r.ToArray()
	if err != nil {
		return err
	}
	if len(vals) != 3 {
		return fmt.Errorf("redis broker: publish script returned %d values", len(vals))
	}
	offset, err := vals[0].AsInt64()
	if err != nil {
		return err
	}
	epoch, err := vals[1].ToString()
	if err != nil {
		return err
	}
	twin, err := vals[2].ToString()
	if err != nil {
		return err
	}
	if twin != "" {
		sp.m.MsgID = twin
	}
	sp.m.Offset, sp.m.Epoch = uint64(offset), epoch
	return nil
}

// storedResult turns a script result into Publish's error.
func (b *Broker) storedResult(sp *storedPublish, r rueidis.RedisResult) error {
	err := r.Error()
	if isConnErr(err) {
		b.markDown(err)
		// The script may or may not have run: a retry with the same
		// idempotency key finds out.
		return unavailable(err)
	}
	if err != nil {
		return fmt.Errorf("redis broker: publish to %s: %w", sp.m.Room, err)
	}
	return sp.stored(r)
}

// publishStored publishes to a room with history: never buffered, since
// the reply must mean "stored".
func (b *Broker) publishStored(ctx context.Context, m *broker.Message, p broker.HistoryPolicy) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.Load() {
		return unavailable(fmt.Errorf("not started"))
	}
	if !b.up.Load() {
		return b.downErr()
	}
	sp, err := b.prepareStored(m, p)
	if err != nil {
		return err
	}
	return b.storedResult(sp, publishLua.Exec(ctx, b.client, sp.keys, sp.args))
}

// Since implements broker.Historian: one script (HMGET and XRANGE) on
// the room's slot. A position with a MsgID is read from its own message
// on, which must be that one: a Redis that came back from an older
// snapshot (or a replica that was behind) gives the offsets after it
// again, in the same epoch, and a client's position there names another
// message, or one not stored yet. Such a position is unrecoverable; the
// room keeps its epoch (a client's word does not reset it: anyone can
// send one).
func (b *Broker) Since(ctx context.Context, room string, pos broker.Position, limit int) ([]*broker.Message, broker.Position, error) {
	return b.since(ctx, room, pos, limit, false, "")
}

// trackedSince is Since for the node's own gap repair, whose positions
// are those of messages Redis gave it (posID: the msgId of the one at
// pos, if known): one past the room's newest, or another message at it,
// means the history was rolled back, and the room starts a new epoch
// (see sinceScript).
func (b *Broker) trackedSince(ctx context.Context, room string, pos broker.Position, posID string, limit int) ([]*broker.Message, broker.Position, error) {
	return b.since(ctx, room, pos, limit, true, posID)
}

func (b *Broker) since(ctx context.Context, room string, pos broker.Position, limit int, tracked bool, posID string) ([]*broker.Message, broker.Position, error) {
	if b.closed.Load() {
		return nil, broker.Position{}, broker.ErrClosed
	}
	if !b.started.Load() {
		return nil, broker.Position{}, unavailable(fmt.Errorf("not started"))
	}
	p := b.policy(room)
	if p.Size <= 0 {
		if pos == (broker.Position{}) {
			return nil, broker.Position{}, nil
		}
		return nil, broker.Position{}, fmt.Errorf("%w: room %q keeps no history", broker.ErrUnrecoverable, room)
	}
	if tracked {
		pos.MsgID = "" // posID is checked by the script, which resets the room
	}
	// checked: the message at pos.Offset is read too, to compare it.
	checked := pos.MsgID != "" && pos.Offset > 0
	start, count := "", max(limit, 0)
	switch {
	case checked:
		start = strconv.FormatUint(pos.Offset, 10) + "-0"
		if count > 0 {
			count++
		}
	case pos != (broker.Position{}):
		start = strconv.FormatUint(pos.Offset+1, 10) + "-0"
	}
	known, knownOffset := "", "0"
	if tracked && pos != (broker.Position{}) {
		known, knownOffset = pos.Epoch, strconv.FormatUint(pos.Offset, 10)
	} else {
		posID = ""
	}
	r := sinceLua.Exec(ctx, b.client, b.histKeys(room), []string{start, strconv.Itoa(count), newEpoch(),
		strconv.FormatInt(p.TTL.Milliseconds(), 10), known, knownOffset, posID})
	if err := r.Error(); err != nil {
		if isConnErr(err) {
			return nil, broker.Position{}, unavailable(err)
		}
		return nil, broker.Position{}, fmt.Errorf("redis broker: since %s: %w", room, err)
	}
	vals, err := r.ToArray()
	if err != nil || len(vals) != 4 {
		return nil, broker.Position{}, fmt.Errorf("redis broker: since %s: bad reply: %v", room, err)
	}
	var cur broker.Position
	if cur.Epoch, err = vals[0].ToString(); err != nil {
		return nil, cur, err
	}
	n, err := vals[1].ToString()
	if err != nil {
		return nil, cur, err
	}
	if cur.Offset, err = strconv.ParseUint(n, 10, 64); err != nil {
		return nil, cur, fmt.Errorf("redis broker: since %s: offset %q", room, n)
	}
	if cur.MsgID, err = vals[3].ToString(); err != nil {
		return nil, cur, err
	}
	if pos == (broker.Position{}) {
		return nil, cur, nil
	}
	switch {
	case pos.Epoch != cur.Epoch:
		return nil, cur, fmt.Errorf("%w: epoch %q is not the current %q", broker.ErrUnrecoverable, pos.Epoch, cur.Epoch)
	case pos.Offset > cur.Offset:
		return nil, cur, fmt.Errorf("%w: offset %d is past the newest, %d", broker.ErrUnrecoverable, pos.Offset, cur.Offset)
	case pos.Offset == cur.Offset && !checked:
		return nil, cur, nil
	}
	entries, err := vals[2].ToArray()
	if err != nil {
		return nil, cur, err
	}
	out := make([]*broker.Message, 0, len(entries))
	for _, e := range entries {
		fields, err := e.ToArray()
		if err != nil || len(fields) != 2 {
			return nil, cur, fmt.Errorf("redis broker: since %s: bad entry", room)
		}
		kv, err := fields[1].AsStrSlice()
		if err != nil || len(kv) != 2 {
			return nil, cur, fmt.Errorf("redis broker: since %s: bad entry fields", room)
		}
		m := new(broker.Message)
		if err := json.Unmarshal([]byte(kv[1]), m); err != nil {
			return nil, cur, fmt.Errorf("redis broker: since %s: %w", room, err)
		}
		out = append(out, m)
	}
	if checked {
		if len(out) == 0 || out[0].Offset != pos.Offset {
			return nil, cur, fmt.Errorf("%w: the message at %d is no longer kept, so the position cannot be checked", broker.ErrUnrecoverable, pos.Offset)
		}
		if out[0].MsgID != pos.MsgID {
			return nil, cur, fmt.Errorf("%w: the message at %d is %q, not %q: the history was rolled back", broker.ErrUnrecoverable, pos.Offset, out[0].MsgID, pos.MsgID)
		}
		out = out[1:]
		if pos.Offset == cur.Offset {
			return nil, cur, nil
		}
	}
	if len(out) == 0 || out[0].Offset != pos.Offset+1 {
		return nil, cur, fmt.Errorf("%w: messages after %d are no longer kept", broker.ErrUnrecoverable, pos.Offset)
	}
	if p.TTL > 0 && time.Since(time.Unix(0, out[0].PublishedAt)) > p.TTL {
		return nil, cur, fmt.Errorf("%w: messages after %d expired", broker.ErrUnrecoverable, pos.Offset)
	}
	return out, cur, nil
}
