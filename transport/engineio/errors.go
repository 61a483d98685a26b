package engineio

import (
	"errors"

	"github.com/heraldrt/herald/transport"
)

// Why a socket closed, as reported by Socket.Err and Handler.OnClose. The
// messages are the reference server's close reasons.
var (
	// ErrPingTimeout: the client did not answer a ping within PingTimeout.
	ErrPingTimeout = errors.New("ping timeout")
	// ErrTransportClose: the client closed the session (a close packet, or
	// its WebSocket closed).
	ErrTransportClose = errors.New("transport close")
	// ErrTransportError: the client broke the transport's rules (two
	// pending polls or posts, a poll abandoned, a ping from the client, a
	// binary POST body) or its connection failed.
	ErrTransportError = errors.New("transport error")
	// ErrParse: the client sent a packet that does not decode.
	ErrParse = errors.New("parse error")
	// ErrPayloadTooLarge: a POST body or a WebSocket message was larger
	// than Config.MaxPayload.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrForcedClose: the application closed the socket (Socket.Close).
	ErrForcedClose = errors.New("forced close")
	// ErrServerShutdown: Server.Shutdown closed the socket.
	ErrServerShutdown = errors.New("server shutting down")
	// ErrInternal: the Handler panicked.
	ErrInternal = errors.New("internal error")
	// ErrBufferFull: more than Config.MaxBufferedBytes waited for the
	// client, which is not keeping up. Send returns it too.
	ErrBufferFull = errors.New("engineio: send buffer full")
	// ErrClosed is returned by Send once the socket is closing or closed.
	ErrClosed = errors.New("engineio: socket closed")
	// ErrPollingFull refuses a polling handshake over Config.MaxPolling
	// (when Config.PollingFull gives no error of its own).
	ErrPollingFull = errors.New("engineio: too many long-polling sessions")
)

// closeCode is the WebSocket close code a socket closed for reason gets.
func closeCode(reason error) int {
	switch reason {
	case ErrServerShutdown:
		return transport.CloseGoingAway
	case ErrParse:
		return transport.CloseProtocolError
	case ErrPayloadTooLarge:
		return transport.CloseMessageTooBig
	case ErrBufferFull:
		return transport.CloseSlowConsumer
	case ErrInternal:
		return transport.CloseInternalError
	}
	return transport.CloseNormal
}

// connReason maps how a WebSocket connection ended to a close reason.
func connReason(err error) error {
	var ce *transport.CloseError
	switch {
	case errors.Is(err, transport.ErrSlowConsumer), errors.Is(err, transport.ErrQueuesFull):
		return ErrBufferFull
	case errors.As(err, &ce) && ce.Code == transport.CloseMessageTooBig:
		return ErrPayloadTooLarge
	case errors.As(err, &ce) && (ce.Code == transport.CloseProtocolError || ce.Code == transport.CloseInvalidPayload):
		return ErrParse
	}
	return ErrTransportClose // the peer's close frame, or its socket ended
}
