// Package redis is the session.Store for clusters: every node reads and
// writes the same Redis, so a client can resume its session on any node.
//
// Each session is one hash, <prefix>:session:<id>, with the fields user,
// node, rooms (a JSON array), connectedAt and lastSeen (RFC 3339 with
// nanoseconds), and a millisecond TTL (PEXPIRE) that Redis enforces, so a
// crashed node's sessions expire without any janitor. Costs: Save is one
// MULTI/EXEC round trip (DEL, HSET, PEXPIRE), Get one HGETALL, Delete one
// DEL, and Touch one EVALSHA of a short script that updates lastSeen and
// the TTL only if the key still exists, so touching an expired session
// reports session.ErrNotFound instead of resurrecting a partial hash (which
// a plain HSET+PEXPIRE pipeline would do). Resume is one EVALSHA, and
// TakePending one MULTI/EXEC (LRANGE, DEL) round trip. AddPending is one
// EVALSHA that keeps a session's pending messages within its bounds
// (Config.MaxPendingBytes; each item records its frame's size, so the
// script weighs it without decoding it) and leaves a record of each
// room's loss in their place; what one Store stored within the session TTL is bounded
// in this process (Config.MaxNodePendingBytes). A Presence made by
// Store.Presence writes a connection's session, its presence entries and,
// after a resume, the take in one pipeline (session.Opener).
//
// It uses the rueidis client, like broker/redis, with automatic pipelining
// of concurrent calls. A Store is safe for concurrent use and starts no
// goroutines of its own.
package redis
