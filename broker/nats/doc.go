// Package nats is the Broker on NATS core: at-most-once, in-memory
// fan-out between Herald nodes; rooms with history (SetHistory) also use
// JetStream, which the server must enable.
//
// Each room is the subject <prefix>.room.<escaped room>, where the room
// name is percent-encoded into a single token (so '.', '*' and '>' in a
// room can never address other rooms). User rooms are
// <prefix>.user.<escaped room> instead, and every node holds one
// subscription to <prefix>.user.* for all of them (see the broker
// package's contract); control goes to <prefix>.control, to which every
// node subscribes too. Payloads are JSON-encoded broker.Message
// and broker.Control values. One Publish is one PUB; Subscribe and
// Unsubscribe are one SUB and UNSUB, Subscribe also waiting for a PING
// round trip so that the server has registered it when it returns.
//
// Reconnects are nats.go's: it retries forever every Config.ReconnectWait,
// resends every subscription after reconnecting, then sends what it
// buffered (Config.PublishBufferBytes; zero makes Publish fail with
// broker.ErrUnavailable while disconnected). Health reports
// broker.ErrUnavailable unless the connection is established.
//
// # History
//
// A room with history has a JetStream stream of its own (file storage,
// <PREFIX>_H_<hash of the room>, subject <prefix>.hist.<escaped room>,
// MaxMsgs = size with the oldest discarded, MaxAge = TTL). Its sequence
// is the room's offset; its epoch is a random value in the stream's
// metadata, set when the stream is created, so a stream deleted, or
// lost with the server's storage, starts a new epoch. A publish is one
// JetStream publish (the reply means the server stored it), then one
// PUB of the message with its offset and epoch on the room's core
// subject. Idempotency keys are Nats-Msg-Id, within the stream's
// duplicate window (the TTL, at most 2 minutes). Since reads the
// stream's info, then one message per direct get. After a reconnect,
// and whenever a room's live messages skip an offset (a second
// publisher's message overtaking, or NATS dropping for a slow
// consumer), the node reads the missed messages from the stream and
// hands them on in order, without duplicates; rooms without history
// are reported to the Handler (HandleGap). What it does not keep: the
// limits of a stream are set when it is created (changing a room's
// policy later does not change an existing stream), control and user
// rooms have no history, and a node caches each stream's epoch until
// its next reconnect or failed publish, so a stream deleted by hand
// while the nodes stay connected is noticed only then.
//
// A Broker is safe for concurrent use. nats.go runs one goroutine per
// subscription, so messages of a room reach the Handler in publish order;
// the Handler must not block (a subscription whose pending queue overflows
// drops messages and logs a slow-consumer error). Close closes the
// connection, which ends those goroutines.
package nats
