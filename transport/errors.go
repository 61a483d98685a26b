package transport

import (
	"errors"
	"strconv"
)

// Close codes used by this package. See doc.go for the table that says
// which of them a client should treat as a reason to reconnect.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005
	CloseAbnormal        = 1006
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
	CloseTryAgainLater   = 1013
	CloseSlowConsumer    = 4008
)

// Sentinel causes reported by [Conn.Err] and returned by [Conn.Send].
var (
	// ErrSlowConsumer means the connection's send queue was full. The
	// connection is closed with code 4008; Err reports a *CloseError
	// wrapped together with this error, so both errors.Is and errors.As
	// work.
	ErrSlowConsumer = errors.New("transport: slow consumer")
	// ErrQueuesFull means the connections of the Upgrader together
	// already queue Options.MaxQueuedBytes: the connection whose message
	// did not fit is closed with code 1013 (try again later); Err wraps
	// this error and a *CloseError like ErrSlowConsumer.
	ErrQueuesFull = errors.New("transport: send queues full")
	// ErrReadsFull means the connections of the Upgrader together already
	// hold Options.MaxReadingBytes in large read buffers: the connection
	// whose buffer did not fit is closed with code 1013 (try again
	// later); Err wraps this error and a *CloseError like ErrSlowConsumer.
	ErrReadsFull = errors.New("transport: read buffers full")
	// ErrHeartbeatTimeout means the peer sent nothing within PongTimeout
	// after a ping and the socket was terminated without a close frame.
	ErrHeartbeatTimeout = errors.New("transport: heartbeat timeout")
	// ErrClosed is returned by Send and WriteText once the connection is
	// closing or closed.
	ErrClosed = errors.New("transport: connection closed")
)

// CloseError is the outcome of a closing handshake, whether the close
// frame was sent by this side (protocol violation, Close, slow consumer)
// or received from the peer.
type CloseError struct {
	Code   int
	Reason string
}

// Error returns a message such as "websocket: close 1009: message too big".
func (e *CloseError) Error() string {
	s := "websocket: close " + strconv.Itoa(e.Code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// validReceivedCloseCode reports whether a peer may send code in a close
// frame (RFC 6455 section 7.4 and the IANA registry).
func validReceivedCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
