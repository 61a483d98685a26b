package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/session"
)

// Revocations is a Redis-backed session.Revocations: one hash,
// <prefix>:revocations, whose fields are "jti:<id>" and "sub:<user>" and
// whose values are "<at> <until>" in Unix seconds. Add is one HSET (and
// a PEXPIREAT that keeps the hash until its last entry's Until); List is
// one HGETALL, and deletes the entries that have expired as it goes. The
// hash holds the revocations still in force, so its size is the number
// of revocations made within the longest token lifetime.
type Revocations struct {
	key    string
	client rueidis.Client
	now    func() time.Time
}

var _ session.Revocations = (*Revocations)(nil)

// NewRevocations connects a revocation store with the same configuration
// as a Store.
func NewRevocations(cfg Config) (*Revocations, error) {
	st, err := New(cfg)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(st.prefix, "session:")
	return &Revocations{key: prefix + "revocations", client: st.client, now: time.Now}, nil
}

// Add implements session.Revocations.
func (rv *Revocations) Add(ctx context.Context, r session.Revocation) error {
	value := strconv.FormatInt(r.At.Unix(), 10) + " " + strconv.FormatInt(r.Until.Unix(), 10)
	b := rv.client.B()
	fv := b.Hset().Key(rv.key).FieldValue()
	if r.TokenID != "" {
		fv = fv.FieldValue("jti:"+r.TokenID, value)
	}
	if r.User != "" {
		fv = fv.FieldValue("sub:"+r.User, value)
	}
	if r.TokenID == "" && r.User == "" {
		return fmt.Errorf("redis revocations: add: neither jti nor sub")
	}
	for _, res := range rv.client.DoMulti(ctx,
		fv.Build(),
		// Keep the hash as long as its longest-lived entry; GT never
		// shortens it.
		b.Expireat().Key(rv.key).Timestamp(r.Until.Unix()+1).Gt().Build(),
		// A hash without a TTL yet (its first entry) is not touched by
		// GT: give it one.
		b.Expireat().Key(rv.key).Timestamp(r.Until.Unix()+1).Nx().Build(),
	) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("redis revocations: add: %w", err)
		}
	}
	return nil
}

// List implements session.Revocations.
func (rv *Revocations) List(ctx context.Context) ([]session.Revocation, error) {
	fields, err := rv.client.Do(ctx, rv.client.B().Hgetall().Key(rv.key).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis revocations: list: %w", err)
	}
	now := rv.now().Unix()
	var out []session.Revocation
	var expired []string
	for f, v := range fields {
		atS, untilS, _ := strings.Cut(v, " ")
		at, err1 := strconv.ParseInt(atS, 10, 64)
		until, err2 := strconv.ParseInt(untilS, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("redis revocations: list: bad entry %s=%q", f, v)
		}
		if until <= now {
			expired = append(expired, f)
			continue
		}
		r := session.Revocation{At: time.Unix(at, 0), Until: time.Unix(until, 0)}
		switch kind, name, _ := strings.Cut(f, ":"); kind {
		case "jti":
			r.TokenID = name
		case "sub":
			r.User = name
		default:
			return nil, fmt.Errorf("redis revocations: list: bad field %q", f)
		}
		out = append(out, r)
	}
	if len(expired) > 0 {
		// Best effort: a failure only delays the cleanup.
		_ = rv.client.Do(ctx, rv.client.B().Hdel().Key(rv.key).Field(expired...).Build()).Error()
	}
	return out, nil
}

// Close implements session.Revocations.
func (rv *Revocations) Close() error {
	rv.client.Close()
	return nil
}
