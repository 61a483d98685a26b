package client

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by the Client's methods.
var (
	// ErrClosed is returned by calls made after Close, and by Err once Close
	// was called.
	ErrClosed = errors.New("herald/client: closed")
	// ErrDisconnected is returned by a request whose connection dropped
	// before the reply arrived. The request may or may not have taken
	// effect; rooms passed to Join stay remembered and are joined again on
	// the next connection.
	ErrDisconnected = errors.New("herald/client: disconnected before the reply")
)

// ServerError is an error frame the server sent in answer to a request.
// Code is one of the protocol's error codes ("forbidden", "not_joined",
// "event_failed", ...) or, for Emit, one the application chose.
type ServerError struct {
	Code    string
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("herald/client: server error %s: %s", e.Code, e.Message)
}

// CloseError is the close frame that ended the Client for good: the server
// said not to reconnect (the codes of protocol.CloseCodes without
// Reconnect: 1008, 4003, 4004). Err returns it.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("herald/client: closed by server with %d: %s", e.Code, e.Reason)
}

// HandshakeError is a refused WebSocket upgrade: the server answered with
// an HTTP status instead of switching protocols. Code and Message come from
// the server's JSON body when it had one.
type HandshakeError struct {
	StatusCode int
	Code       string
	Message    string
	// RetryAfter is the server's Retry-After (503 while it drains), or 0.
	RetryAfter time.Duration
	err        error
}

func (e *HandshakeError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("herald/client: handshake refused with HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
	}
	return fmt.Sprintf("herald/client: handshake refused with HTTP %d: %v", e.StatusCode, e.err)
}

func (e *HandshakeError) Unwrap() error { return e.err }
