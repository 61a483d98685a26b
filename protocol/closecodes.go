package protocol

import "slices"

// WebSocket close codes a Herald client may see. The 1xxx codes are
// RFC 6455's; the 4xxx codes are Herald's own (the range RFC 6455 reserves
// for applications). CloseCodes says, for each, whether Herald sends it
// and whether a client reconnects after it.
const (
	CloseNormal          = 1000 // the client or server finished normally
	CloseGoingAway       = 1001 // server shutdown (drain) or client navigating away
	CloseProtocolError   = 1002 // RFC 6455 framing violation
	CloseUnsupportedData = 1003 // never sent by Herald: binary frames get an error frame instead
	CloseAbnormal        = 1006 // never sent: socket closed without a close frame (heartbeat timeout, network cut)
	CloseInvalidPayload  = 1007 // text frame with invalid UTF-8
	ClosePolicyViolation = 1008 // rejected by policy (application hook refused the connection, abuse)
	CloseMessageTooBig   = 1009 // message over the read limit
	CloseInternalError   = 1011 // unexpected server failure
	CloseTryAgainLater   = 1013 // the node is at a node-wide bound (unacknowledged messages, queued bytes, read buffers); a proxy may send it too
	CloseTokenExpired    = 4001 // the token expired and was not refreshed in time
	CloseRevoked         = 4003 // the token or user was revoked
	CloseDisconnected    = 4004 // the application disconnected this client (DisconnectUser)
	CloseSlowConsumer    = 4008 // the client did not read fast enough; its send queue filled up
)

// CloseCode describes one close code: the one table that the server, the
// Go client (package client), the JavaScript client (clients/js) and the
// docs (docs/protocol.md, the package docs of client and transport)
// follow. A test compares each of them with it.
type CloseCode struct {
	Code int
	// Name is the constant's name in this package.
	Name string
	// Meaning is a few words for tables and logs.
	Meaning string
	// Sent is false for codes Herald never puts in a close frame: 1006
	// is what a client reports when the socket ends without one, and
	// 1003 may come from something else on the way.
	Sent bool
	// Reconnect reports whether a client connects again after it. A
	// client's own close (1000, or 1001 when a page goes away) is final
	// whatever this says.
	Reconnect bool
	// Advice says how: after what delay, or what must change first.
	Advice string
}

// CloseCodes is every close code a Herald client may see, by code.
var CloseCodes = []CloseCode{
	{CloseNormal, "CloseNormal", "normal close", true, true, "yes (a close the client did not ask for)"},
	{CloseGoingAway, "CloseGoingAway", "server draining", true, true, "yes, after retryAfterMs"},
	{CloseProtocolError, "CloseProtocolError", "protocol violation", true, true, "yes, but it is a client bug"},
	{CloseUnsupportedData, "CloseUnsupportedData", "unsupported data", false, true, "yes, with backoff"},
	{CloseAbnormal, "CloseAbnormal", "network cut, heartbeat timeout", false, true, "yes, with backoff"},
	{CloseInvalidPayload, "CloseInvalidPayload", "invalid UTF-8", true, true, "yes, but it is a client bug"},
	{ClosePolicyViolation, "ClosePolicyViolation", "refused by policy", true, false, "no, unless the cause is fixed"},
	{CloseMessageTooBig, "CloseMessageTooBig", "message too big", true, true, "yes, send smaller messages"},
	{CloseInternalError, "CloseInternalError", "server error", true, true, "yes, with backoff"},
	{CloseTryAgainLater, "CloseTryAgainLater", "try again later", true, true, "yes, with backoff"},
	{CloseTokenExpired, "CloseTokenExpired", "token expired", true, true, "yes, with a new token"},
	{CloseRevoked, "CloseRevoked", "token or user revoked", true, false, "no"},
	{CloseDisconnected, "CloseDisconnected", "disconnected by the application", true, false, "no"},
	{CloseSlowConsumer, "CloseSlowConsumer", "slow consumer", true, true, "yes, with backoff; read faster"},
}

// LookupCloseCode returns code's entry of CloseCodes, if it has one.
func LookupCloseCode(code int) (CloseCode, bool) {
	i, ok := slices.BinarySearchFunc(CloseCodes, code, func(c CloseCode, code int) int { return c.Code - code })
	if !ok {
		return CloseCode{}, false
	}
	return CloseCodes[i], true
}

// CloseReconnects reports whether a client connects again after the
// server closed its connection with code. Codes outside CloseCodes (a
// proxy's, or a newer server's) are treated as a failure: reconnect with
// backoff.
func CloseReconnects(code int) bool {
	c, ok := LookupCloseCode(code)
	return !ok || c.Reconnect
}
