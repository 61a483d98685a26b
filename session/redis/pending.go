package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/session"
)

var _ session.PendingStore = (*Store)(nil)

// Defaults of Config.MaxPendingBytes and Config.MaxNodePendingBytes: what
// one connection may leave unacknowledged, and what a node's connections
// together may hold unacknowledged (herald.DefaultMaxPendingAckBytes and
// herald.DefaultMaxNodePendingAckBytes).
const (
	DefaultMaxPendingBytes     = 4 << 20
	DefaultMaxNodePendingBytes = 256 << 20
)

// ErrPendingFull is returned by AddPending when the messages would take
// what this Store stored within a session TTL past
// Config.MaxNodePendingBytes: they are not stored, and the session
// records that their rooms lost messages (session.Pending.Lost).
var ErrPendingFull = errors.New("redis session store: pending messages at this node's bound")

// pendingKey is the list of a session's pending messages, JSON each.
func (st *Store) pendingKey(id string) string { return st.prefix + id + ":pending" }

// item is a pending message as the list keeps it: its frame's size
// first, so that addPendingScript weighs it without decoding the frame
// (base64 in the JSON). TakePending decodes it as a session.Pending.
type item struct {
	Size  int    `json:"n"`
	MsgID string `json:"id"`
	Frame []byte `json:"frame"`
	Room  string `json:"room,omitempty"`
}

// addPendingScript appends ARGV[4..] to the list, keeps its newest
// messages within ARGV[1] of them (if positive) and ARGV[3] bytes of
// their frames (the newest is kept whatever its size, as a connection
// holds one larger message when it holds nothing else; an item of a
// node that did not record the size weighs 3/4 of its JSON, the frame
// being base64), and sets its TTL to ARGV[2] ms. A message it drops
// becomes a count in a loss record of its room ({"room":…,"lost":n}, or
// {"lost":n} for all rooms: an item that starts with {"room": or
// {"lost": is a record, as no message does), merged with the list's
// records into one per room (one for all rooms past 64 of them, so that
// records stay few), first in the list. It returns the messages dropped.
var addPendingScript = rueidis.NewLuaScript(`
local function record(it)
  local p = string.sub(it, 1, 8)
  return p == '{"room":' or p == '{"lost":'
end
local function weight(it)
  return tonumber(string.match(it, '^{"n":(%d+),')) or math.floor(#it * 3 / 4)
end
local maxn, maxb = tonumber(ARGV[1]), tonumber(ARGV[3])
local records = false
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  if record(ARGV[i]) then records = true end
end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local keep, lost, n, b, dropped = {}, {}, 0, 0, 0
for i = #items, 1, -1 do
  local it = items[i]
  if record(it) then
    local ok, r = pcall(cjson.decode, it)
    if ok and type(r) == 'table' and tonumber(r.lost) then
      local room = type(r.room) == 'string' and r.room or ''
      lost[room] = (lost[room] or 0) + tonumber(r.lost)
    end
  elseif (maxn <= 0 or n < maxn) and (n == 0 or b + weight(it) <= maxb) then
    n = n + 1; b = b + weight(it); keep[#keep + 1] = it
  else
    local ok, m = pcall(cjson.decode, it)
    local room = ok and type(m) == 'table' and type(m.room) == 'string' and m.room or ''
    lost[room] = (lost[room] or 0) + 1
    dropped = dropped + 1
  end
end
if dropped > 0 or records then
  local rooms, all = 0, 0
  for _, c in pairs(lost) do rooms = rooms + 1; all = all + c end
  redis.call('DEL', KEYS[1])
  if rooms > 64 then
    redis.call('RPUSH', KEYS[1], '{"lost":' .. all .. '}')
  else
    for room, c in pairs(lost) do
      redis.call('RPUSH', KEYS[1], '{"room":' .. cjson.encode(room) .. ',"lost":' .. c .. '}')
    end
  end
  for i = #keep, 1, -1 do redis.call('RPUSH', KEYS[1], keep[i]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return dropped`)

// takeCmds read a session's pending messages and delete them, in one
// transaction; the EXEC's reply (the last) holds the LRANGE's.
func (st *Store) takeCmds(id string) rueidis.Commands {
	key := st.pendingKey(id)
	b := st.client.B()
	return rueidis.Commands{
		b.Multi().Build(),
		b.Lrange().Key(key).Start(0).Stop(-1).Build(),
		b.Del().Key(key).Build(),
		b.Exec().Build(),
	}
}

// taken parses the replies to takeCmds.
func taken(id string, res []rueidis.RedisResult) ([]session.Pending, error) {
	for _, r := range res {
		if err := r.Error(); err != nil {
			return nil, fmt.Errorf("redis session store: take pending %s: %w", id, err)
		}
	}
	exec, err := res[len(res)-1].ToArray()
	if err != nil || len(exec) != 2 {
		return nil, fmt.Errorf("redis session store: take pending %s: unexpected reply (%v)", id, err)
	}
	items, err := exec[0].AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("redis session store: take pending %s: %w", id, err)
	}
	out := make([]session.Pending, 0, len(items))
	for _, it := range items {
		var p session.Pending
		if err := json.Unmarshal([]byte(it), &p); err != nil {
			return nil, fmt.Errorf("redis session store: take pending %s: %w", id, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// AddPending implements session.PendingStore. It keeps the session's
// newest messages within max of them and Config.MaxPendingBytes of their
// frames (the newest whatever its size), and
// returns a *session.PendingDropped when it dropped others; and it
// refuses, with ErrPendingFull, messages that would take what this Store
// stored within a session TTL past Config.MaxNodePendingBytes. Either
// way the session records the loss, for TakePending (session.Pending.Lost).
func (st *Store) AddPending(ctx context.Context, id string, msgs []session.Pending, max int, ttl time.Duration) error {
	if len(msgs) == 0 {
		return nil
	}
	args := make([]string, 0, len(msgs)+3)
	args = append(args, strconv.Itoa(max), strconv.FormatInt(millis(ttl), 10), strconv.FormatInt(st.maxPendingBytes, 10))
	var size int64
	for _, m := range msgs {
		b, err := json.Marshal(item{Size: len(m.Frame), MsgID: m.MsgID, Frame: m.Frame, Room: m.Room})
		if err != nil {
			return fmt.Errorf("redis session store: encode pending: %w", err)
		}
		size += int64(len(m.Frame))
		args = append(args, string(b))
	}
	full := !st.nodePending.add(time.Now(), ttl, size, st.maxNodePendingBytes)
	if full {
		// Only the loss, one record per room, is stored.
		args = append(args[:3], lossRecords(msgs)...)
	}
	dropped, err := addPendingScript.Exec(ctx, st.client, []string{st.pendingKey(id)}, args).AsInt64()
	if err != nil {
		return fmt.Errorf("redis session store: add pending %s: %w", id, err)
	}
	switch {
	case full:
		return fmt.Errorf("%w: %d bytes stored within the session TTL, %d more, bound %d", ErrPendingFull,
			st.nodePending.held(time.Now()), size, st.maxNodePendingBytes)
	case dropped > 0:
		return &session.PendingDropped{Messages: int(dropped)}
	}
	return nil
}

// lossRecords returns the loss records (JSON) of msgs: one per room.
func lossRecords(msgs []session.Pending) []string {
	var rooms []string
	count := make(map[string]int)
	for _, m := range msgs {
		if count[m.Room] == 0 {
			rooms = append(rooms, m.Room)
		}
		count[m.Room]++
	}
	out := make([]string, 0, len(rooms))
	for _, r := range rooms {
		room, _ := json.Marshal(r) // a string: cannot fail
		out = append(out, fmt.Sprintf(`{"room":%s,"lost":%d}`, room, count[r]))
	}
	return out
}

// TakePending implements session.PendingStore. Among the messages come
// the session's loss records (session.Pending.Lost), first.
func (st *Store) TakePending(ctx context.Context, id string) ([]session.Pending, error) {
	return taken(id, st.client.DoMulti(ctx, st.takeCmds(id)...))
}

// ledger counts the bytes this Store stored as pending messages, each
// for the TTL it was stored with: what Redis may still hold of them (a
// Store cannot see what other nodes take). Stores within a second of
// expiry share an entry, so it holds at most one per second of TTL.
type ledger struct {
	mu      sync.Mutex
	entries []ledgerEntry // by until, mostly: a shorter TTL after a longer one waits for it
	bytes   int64
}

type ledgerEntry struct {
	until int64 // Unix seconds, rounded up
	bytes int64
}

// expireLocked forgets the entries whose TTL passed. l.mu must be held.
func (l *ledger) expireLocked(now time.Time) {
	sec := now.Unix()
	i := 0
	for ; i < len(l.entries) && l.entries[i].until <= sec; i++ {
		l.bytes -= l.entries[i].bytes
	}
	l.entries = append(l.entries[:0], l.entries[i:]...)
}

// add counts n bytes stored for ttl and reports true, or reports false
// (counting nothing) when they would take it past limit.
func (l *ledger) add(now time.Time, ttl time.Duration, n, limit int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	if l.bytes+n > limit {
		return false
	}
	until := now.Add(ttl + time.Second - 1).Unix()
	if k := len(l.entries); k > 0 && l.entries[k-1].until >= until {
		l.entries[k-1].bytes += n
	} else {
		l.entries = append(l.entries, ledgerEntry{until: until, bytes: n})
	}
	l.bytes += n
	return true
}

// held returns the bytes counted and not expired.
func (l *ledger) held(now time.Time) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	return l.bytes
}

// PendingBytes returns the bytes of pending messages this Store stored
// within their session TTL (Config.MaxNodePendingBytes).
func (st *Store) PendingBytes() int64 { return st.nodePending.held(time.Now()) }
