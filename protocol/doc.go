// Package protocol defines Herald's wire protocol v1: the JSON frames a
// client sends (requests), the frames the server sends back, the error codes
// carried in error frames and the WebSocket close codes Herald uses.
//
// Decoding is strict about shape and lenient about extras: unknown fields are
// ignored so that newer clients can talk to older servers, but a frame that is
// not a JSON object, has no type, or carries a field of the wrong JSON type is
// rejected with an *Error whose Code is CodeBadMessage. The package holds no
// state and is safe for concurrent use. docs/protocol.md is the human-readable
// version of this package and must move with it.
package protocol
