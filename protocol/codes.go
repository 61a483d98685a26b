package protocol

// Error codes carried in the "code" field of an error frame. An error frame
// never closes the connection by itself: the client may keep using it.
const (
	// CodeBadMessage: the frame is not valid JSON, not an object, or a field
	// has the wrong JSON type.
	CodeBadMessage = "bad_message"
	// CodeUnknownType: the "type" field names no request this server knows.
	CodeUnknownType = "unknown_type"
	// CodeBadRequest: a required field is missing or invalid (room, event, id).
	CodeBadRequest = "bad_request"
	// CodeBinaryUnsupported: a binary frame was received; protocol v1 is text only.
	CodeBinaryUnsupported = "binary_unsupported"
	// CodeForbidden: the identity may not join or publish to that room.
	CodeForbidden = "forbidden"
	// CodeNotJoined: publish to a room the connection has not joined.
	CodeNotJoined = "not_joined"
	// CodeTooManyRooms: the connection reached its limit of joined rooms.
	CodeTooManyRooms = "too_many_rooms"
	// CodeNoHandler: an emit arrived but the application registered no event hook.
	CodeNoHandler = "no_handler"
	// CodeEventFailed: the application's event hook returned an error.
	CodeEventFailed = "event_failed"
	// CodeRateLimited: the connection sends faster than it is allowed to.
	CodeRateLimited = "rate_limited"
	// CodeBrokerUnavailable: the message could not be handed to the broker;
	// it was not delivered and the client may retry.
	CodeBrokerUnavailable = "broker_unavailable"
	// CodePublishTimeout: the broker did not confirm the message within the
	// server's backend timeout. It may still be delivered: retrying may
	// deliver it twice.
	CodePublishTimeout = "publish_timeout"
	// CodeOverloaded: the node holds as many publications waiting for
	// the broker as it may (Config.MaxNodePublishBytes); this one was not
	// published and the client may retry shortly. To a join that
	// recovers: the node's history replays hold as much as they may
	// (Config.MaxNodeReplayBytes); the room was not joined.
	CodeOverloaded = "overloaded"
	// CodeTokenInvalid: a refresh carried a token that does not verify or
	// belongs to another user; the connection keeps its current token.
	CodeTokenInvalid = "token_invalid"
	// CodeBackendUnavailable: the application's backend, which the server
	// asks about this request, is down, refused the call or answered
	// something the server cannot read. The request did not take effect
	// (for an emit: it may have reached the backend).
	CodeBackendUnavailable = "backend_unavailable"
	// CodeBackendTimeout: the application's backend did not answer in
	// time. For a join or publish the request did not take effect; an
	// emit may have reached the backend.
	CodeBackendTimeout = "backend_timeout"
	// CodeInternal: the server failed (for example an application hook
	// panicked). The request may or may not have taken effect.
	CodeInternal = "internal"
)
