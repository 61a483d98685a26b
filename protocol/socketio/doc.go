// Package socketio encodes and decodes Socket.IO protocol revision 5
// packets, carried as Engine.IO messages: CONNECT, DISCONNECT, EVENT, ACK,
// CONNECT_ERROR, BINARY_EVENT and BINARY_ACK, with their namespace, ack id,
// JSON payload and binary attachments.
//
// A packet travels as one text message
//
//	<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//
// followed, for the binary types, by one binary Engine.IO message per
// attachment. In the payload each attachment is replaced by a placeholder
// {"_placeholder":true,"num":N}; Reconstructor collects the attachments that
// follow a binary packet, and Resolve and Deconstruct convert between
// payloads with placeholders and Go values holding []byte.
//
// The package owns only the byte format. It holds no state beyond a
// Reconstructor, does no I/O, and is safe for concurrent use. Decoders take
// untrusted input: sizes, attachment counts, namespaces and ack ids are
// bounded by Limits, payloads are checked against what each packet type may
// carry, and every failure is an error wrapping ErrInvalid or ErrTooLarge,
// never a panic.
//
// Namespaces, sockets and acks are built on this package by the Socket.IO
// adapter, package adapter/socketio.
package socketio
