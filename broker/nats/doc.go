// Package nats is the Broker on NATS core (no JetStream): at-most-once,
// in-memory fan-out between Herald nodes.
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
// A Broker is safe for concurrent use. nats.go runs one goroutine per
// subscription, so messages of a room reach the Handler in publish order;
// the Handler must not block (a subscription whose pending queue overflows
// drops messages and logs a slow-consumer error). Close closes the
// connection, which ends those goroutines.
package nats
