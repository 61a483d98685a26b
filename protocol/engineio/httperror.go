package engineio

import (
	"fmt"
	"net/http"
)

// ErrorCode is the code an Engine.IO server puts in the JSON body of a
// refused HTTP request: {"code":<code>,"message":<message>}.
type ErrorCode int

// The Engine.IO server error codes, as the reference server sends them.
const (
	UnknownTransport           ErrorCode = 0 // "transport" missing or not polling/websocket
	UnknownSID                 ErrorCode = 1 // "sid" not a session of this server
	BadHandshakeMethod         ErrorCode = 2 // handshake not a GET
	BadRequest                 ErrorCode = 3 // anything else malformed
	Forbidden                  ErrorCode = 4 // refused by the application
	UnsupportedProtocolVersion ErrorCode = 5 // "EIO" is not 4
)

var errorMessages = [...]string{
	"Transport unknown", "Session ID unknown", "Bad handshake method",
	"Bad request", "Forbidden", "Unsupported protocol version",
}

// Message returns the exact message the reference server sends with c.
func (c ErrorCode) Message() string {
	if c >= 0 && int(c) < len(errorMessages) {
		return errorMessages[c]
	}
	return fmt.Sprintf("engine.io error %d", int(c))
}

// HTTPStatus returns the status of a response carrying c: 403 for
// Forbidden, 400 for the others.
func (c ErrorCode) HTTPStatus() int {
	if c == Forbidden {
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// Body returns the JSON body of a response carrying c, sent with
// Content-Type application/json.
func (c ErrorCode) Body() []byte {
	return fmt.Appendf(nil, `{"code":%d,"message":%q}`, int(c), c.Message())
}
