// Package hub owns a node's rooms: which local members are in which room,
// and the fan-out of each message to them.
//
// A message is encoded once per codec (see Delivery) and the same prepared
// frame is queued to every member; members must only enqueue, never block,
// so one slow client cannot hold up a broadcast. Join and Leave tell the
// broker about this node's interest: the first local member of a room
// subscribes, the last one to leave unsubscribes. User rooms (see
// protocol.UserRoomPrefix) reach every node without a subscription; the hub
// keeps them by user id (JoinUser), one map slot per user with a single
// local connection.
//
// Concurrency: all methods are safe for concurrent use. Rooms live in 64
// shards, each under its own RWMutex; fan-out holds a shard's read lock.
// Lock order: subscription stripe lock (subMu) before shard lock, never the
// reverse; no hub lock is held while calling the broker's Publish.
package hub
