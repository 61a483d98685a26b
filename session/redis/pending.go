package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/session"
)

var _ session.PendingStore = (*Store)(nil)

// pendingKey is the list of a session's pending messages, JSON each.
func (st *Store) pendingKey(id string) string { return st.prefix + id + ":pending" }

// addPendingScript appends ARGV[3..] to the list, keeps its newest
// ARGV[1] and sets its TTL to ARGV[2] ms.
var addPendingScript = rueidis.NewLuaScript(`
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
if tonumber(ARGV[1]) > 0 then redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

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

// AddPending implements session.PendingStore.
func (st *Store) AddPending(ctx context.Context, id string, msgs []session.Pending, max int, ttl time.Duration) error {
	if len(msgs) == 0 {
		return nil
	}
	args := make([]string, 0, len(msgs)+2)
	args = append(args, strconv.Itoa(max), strconv.FormatInt(millis(ttl), 10))
	for _, m := range msgs {
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("redis session store: encode pending: %w", err)
		}
		args = append(args, string(b))
	}
	if err := addPendingScript.Exec(ctx, st.client, []string{st.pendingKey(id)}, args).Error(); err != nil {
		return fmt.Errorf("redis session store: add pending %s: %w", id, err)
	}
	return nil
}

// TakePending implements session.PendingStore.
func (st *Store) TakePending(ctx context.Context, id string) ([]session.Pending, error) {
	return taken(id, st.client.DoMulti(ctx, st.takeCmds(id)...))
}
