// Package engineio encodes and decodes Engine.IO protocol revision 4
// packets, the transport layer under Socket.IO: the seven packet types,
// text and binary messages on WebSocket frames, the `b`+base64 form of binary
// messages and the record-separator batching of HTTP long-polling payloads,
// and the JSON handshake carried by the open packet.
//
// The package owns only the byte format. It holds no state, does no I/O and
// is safe for concurrent use. Every decoder takes untrusted input: it bounds
// what it accepts, returns an error wrapping ErrInvalid (or ErrTooLarge) for
// anything malformed, and never panics.
//
// The server (polling, WebSocket, upgrade, heartbeats) built on it is
// package transport/engineio.
package engineio
