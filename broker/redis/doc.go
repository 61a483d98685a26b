// Package redis is the Broker for clusters of Herald nodes that share a
// Redis (standalone, or Redis Cluster with sharded pub/sub).
//
// # Client
//
// It uses rueidis rather than go-redis v9. rueidis pipelines concurrent
// commands on one connection per node automatically, which is what
// PUBLISH under load wants (measured here: 8 goroutines/CPU publishing
// through one client reached ~6.3µs/op and 0 allocs with rueidis against
// ~11.6µs/op and 7 allocs with go-redis' pooled connections). It routes
// SSUBSCRIBE/SPUBLISH to the slot owner per channel, whereas go-redis pins
// one PubSub to the node of its first channel, so rooms across slots would
// need one PubSub per node and manual re-routing. Both can resubscribe after
// a reconnect, but rueidis' Receive also reports subscription confirmations
// (so Subscribe can return only once Redis has registered it) and gives us
// the per-channel loop in which we resubscribe ourselves.
//
// # Channels and encoding
//
// Each room is one channel, <prefix>:room:{<room>}; the braces make the
// room the hash tag, so in cluster mode the channel lives on the master
// owning that slot. User rooms (protocol.UserRoomPrefix) are the exception:
// they share 16 user channels, <prefix>:users:{0} to {15}, a room taking
// the one given by the CRC-32 (IEEE) of its name modulo 16, and every node
// subscribes to all of them at Start, as to <prefix>:control (sharded
// channels in cluster mode). Payloads are the JSON encoding of
// broker.Message or broker.Control, readable with redis-cli SUBSCRIBE.
//
// # Cost
//
// One Publish is one PUBLISH (cluster: one SPUBLISH, sent to the slot
// owner only, which is why sharded pub/sub scales where cluster-wide
// PUBLISH, broadcast over the cluster bus to every node, does not).
// Subscribe is one SUBSCRIBE (SSUBSCRIBE) the first time a node has
// interest in a room and Unsubscribe one UNSUBSCRIBE, the Hub guaranteeing
// that for each room; for a user room both do nothing.
//
// Every connection has a room of its own (its user room); through the
// user channels that costs no channel, no subscription and no round trip
// at connect, on every node and on Redis, at the price of every node
// receiving every direct message (a node without one of the user's
// connections drops it in the Hub). A standalone broker holds control,
// the user channels and shared rooms on one dedicated connection, with
// rueidis' pub/sub hooks: a channel costs a map entry, and 16 fan-out
// workers hand the messages to the Handler. Config.OwnSubscription picks
// rooms that get a rueidis Receive read by a goroutine of their own
// instead (≈ 7 KB each), as every room has in cluster mode (sharded
// channels live on different masters); `herald serve` gives one to every
// room unless run with --redis-shared-rooms. Three bench nodes sharing a standalone Redis, 3,333 idle
// connections each, grew by 13.4 KB RSS per connection with a Receive
// per user room and by 6.9 KB with user rooms as channels of the shared
// connection (docs/benchmarks.md has the figure with user channels).
//
// # Failures
//
// A monitor pings Redis every second (every 100ms while down). While
// Redis is unreachable Health returns an error wrapping
// broker.ErrUnavailable, Subscribe fails with it and Publish either fails
// with it (Config.PublishBuffer == 0) or queues, bounded, and the queue is
// sent in order once this node has resubscribed. The shared subscriber
// connection, and the goroutine of every room that has a subscription of
// its own, subscribe again as soon as Redis answers, so rooms and control come back within about
// 100ms of Redis.
// Redis pub/sub itself keeps nothing: messages published while a node is
// disconnected never reach it, buffered ones included if that node
// resubscribes after the flush. Rooms with history (SetHistory) are the
// exception: when a subscription comes back, the node reads what it
// missed from the room's stream and hands it on, in order and without
// duplicates, before newer messages; other rooms are reported to the
// Handler (HandleGap).
//
// # History
//
// A room with history has a stream <prefix>:hist:{<room>}:s (entry ID
// <offset>-0, XADD MAXLEN ~ size), a hash <prefix>:hist:{<room>}:m
// (epoch, newest offset) and a sorted set <prefix>:hist:{<room>}:k
// (idempotency keys scored by offset, those of trimmed messages
// removed); the room is their hash tag, as for its channel.
// One Lua script numbers, stores and publishes a message atomically, so
// the channel carries a room's messages in offset order, one round trip
// per publish. Such publishes are never buffered. A publication whose reply was lost in an
// outage is queued again rather than dropped, so it may arrive twice.
//
// # Concurrency
//
// A Broker is safe for concurrent use. Messages from one publisher to one
// room reach each node in order: the publisher waits for each PUBLISH reply
// (or queues behind earlier buffered publications), and each room's
// messages are handed to the Handler by a single goroutine (a shared
// room's fan-out worker, or the room's own), in order. The Handler must not block.
// Close stops and waits for every goroutine the broker started.
package redis
