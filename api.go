package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/internal/logctx"
	"github.com/heraldrt/herald/protocol"
)

// maxAPIBody bounds a server API request body.
const maxAPIBody = 1 << 20

// PublishRequest is the body of POST /api/v1/publish. Exactly one of Room
// and User is set.
type PublishRequest struct {
	Room  string          `json:"room,omitempty"`
	User  string          `json:"user,omitempty"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
	Ack   bool            `json:"ack,omitempty"`
	// IdempotencyKey makes a retry with the same key count once in a room
	// that keeps history (the Idempotency-Key header does the same).
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// PublishResponse is the body of a successful publish. Offset and Epoch
// are the message's place in the room's history, when it keeps one.
type PublishResponse struct {
	MsgID  string `json:"msgId"`
	Room   string `json:"room"`
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

// apiError is the JSON body of every non-2xx answer.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // "Bearer <key>", not "Bearer \u003ckey\u003e"
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, apiError{Error: code, Message: message})
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyStatus is the body of /readyz.
type readyStatus struct {
	Status      string `json:"status"`
	Draining    bool   `json:"draining"`
	Broker      string `json:"broker"`
	BrokerError string `json:"brokerError,omitempty"`
	Connections int    `json:"connections"`
	// Revocations is "loaded", or "loading" until Config.Revocations has
	// been read (the node is not ready until then).
	Revocations string `json:"revocations"`
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	st := readyStatus{Status: "ready", Broker: "up", Draining: s.draining.Load(), Connections: s.Connections(), Revocations: "loaded"}
	if !s.revLoaded.Load() {
		st.Revocations = "loading"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.broker.Health(ctx); err != nil {
		st.Broker, st.BrokerError = "down", err.Error()
	}
	// Only a drain makes the node unready. A broker outage hits every node
	// at once: failing readiness then would leave the load balancer with no
	// node at all, while each can still serve its local rooms. It shows in
	// the detail, in herald_broker_up and in publishes refused loudly.
	code := http.StatusOK
	switch {
	case st.Draining:
		st.Status, code = "draining", http.StatusServiceUnavailable
	case st.Revocations != "loaded":
		st.Status, code = "starting", http.StatusServiceUnavailable
	case st.Broker != "up":
		st.Status = "degraded"
	}
	writeJSON(w, code, st)
}

// apiRequest is one server-API request that passed the key check.
type apiRequest struct {
	s        *Server
	w        http.ResponseWriter
	r        *http.Request
	ctx      context.Context // carries the request's correlation id for logs
	cid      string
	endpoint string
}

// api wraps a server-API handler with what every endpoint does: a
// correlation id (X-Request-ID, echoed), the API key check (401 with
// WWW-Authenticate) and a request count by endpoint and status.
func (s *Server) api(endpoint string, h func(a *apiRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cid := requestID(r, id.New(12))
		w.Header()[requestIDKey] = []string{cid}
		ctx := logctx.With(r.Context(), slog.String("correlation_id", cid))
		if !s.checkAPIKey(r) {
			s.log.InfoContext(ctx, "api request refused: bad key", "endpoint", endpoint)
			s.metrics.APIRequests.WithLabelValues(endpoint, "401").Inc()
			refuseBody(w, r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald-api"`)
			writeJSONError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)")
			return
		}
		h(&apiRequest{s: s, w: w, r: r, ctx: ctx, cid: cid, endpoint: endpoint})
	}
}

// fail answers with a JSON error and logs why.
func (a *apiRequest) fail(status int, code, msg string) {
	a.s.metrics.APIRequests.WithLabelValues(a.endpoint, strconv.Itoa(status)).Inc()
	a.s.log.InfoContext(a.ctx, "api request failed", "endpoint", a.endpoint, "status", status, "error", code, "message", msg)
	writeJSONError(a.w, status, code, msg)
}

// ok answers 200 with v as JSON.
func (a *apiRequest) ok(v any) {
	a.s.metrics.APIRequests.WithLabelValues(a.endpoint, "200").Inc()
	writeJSON(a.w, http.StatusOK, v)
}

// failBody answers a request body that could not be decoded: 413 when
// it was over maxAPIBody, 400 otherwise.
func (a *apiRequest) failBody(err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		a.fail(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", maxAPIBody))
		return
	}
	a.fail(http.StatusBadRequest, "bad_request", err.Error())
}

func (s *Server) serveAPINotFound(a *apiRequest) {
	a.fail(http.StatusNotFound, "not_found", "no such API endpoint: "+a.r.Method+" "+a.r.URL.Path)
}

func (s *Server) serveAPIPublish(a *apiRequest) {
	req, err := decodePublish(http.MaxBytesReader(a.w, a.r.Body, maxAPIBody))
	if err != nil {
		a.failBody(err)
		return
	}
	room := req.Room
	if req.User != "" {
		room = protocol.UserRoom(req.User)
	}
	key := req.IdempotencyKey
	if h := a.r.Header.Get("Idempotency-Key"); h != "" {
		if key != "" && key != h {
			a.fail(http.StatusBadRequest, "bad_request", `the Idempotency-Key header and "idempotencyKey" differ`)
			return
		}
		key = h
	}
	if err := protocol.ValidateIdempotencyKey(key); err != nil {
		a.fail(http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	meta := pubMeta{cid: a.cid, ack: req.Ack}
	if key != "" {
		meta.idk = "a:" + key // the space of Server.Publish's keys
	}
	m := s.newMessage(room, req.Event, req.Data, meta)
	err = s.publishMessage(a.ctx, m)
	switch {
	case errors.Is(err, ErrPublishTimeout):
		s.log.WarnContext(a.ctx, "api publish: not confirmed in time", "room", room, "err", err)
		a.fail(http.StatusGatewayTimeout, protocol.CodePublishTimeout, publishTimeoutMessage)
		return
	case err != nil:
		s.log.WarnContext(a.ctx, "api publish: broker refused", "room", room, "err", err)
		a.fail(http.StatusServiceUnavailable, protocol.CodeBrokerUnavailable, "message not delivered: broker unavailable; retry later")
		return
	}
	s.log.InfoContext(a.ctx, "api publish", "room", room, "event", req.Event, "msg_id", m.MsgID, "offset", m.Offset)
	a.ok(PublishResponse{MsgID: m.MsgID, Room: room, Offset: m.Offset, Epoch: m.Epoch})
}

// readText reads a JSON body whole and refuses it unless it is valid
// UTF-8 without escaped lone surrogates (protocol.CheckText), which the
// JSON decoder would otherwise turn into U+FFFD: a room name with such
// bytes would be published to another room than the one named.
func readText(body io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if err := protocol.CheckText(b); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	return bytes.NewReader(b), nil
}

// decodeJSONBody decodes a size-limited JSON object without unknown fields.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readText(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: expected a JSON object")
		}
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

// decodePublish parses and validates a publish body.
func decodePublish(r io.Reader) (*PublishRequest, error) {
	body, err := readText(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var req PublishRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty body: expected a JSON object")
		}
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON body: more than one value")
	}
	switch {
	case req.Room == "" && req.User == "":
		return nil, errors.New(`one of "room" or "user" is required`)
	case req.Room != "" && req.User != "":
		return nil, errors.New(`give "room" or "user", not both`)
	}
	if req.Room != "" {
		if err := protocol.ValidateRoom(req.Room); err != nil {
			return nil, err
		}
	} else if !auth.ValidClientID(req.User) {
		if err := protocol.ValidateRoom(protocol.UserRoom(req.User)); err != nil {
			return nil, fmt.Errorf(`invalid "user" (as the room %s…: %w)`, protocol.UserRoomPrefix, err)
		}
	}
	if err := protocol.ValidateEvent(req.Event); err != nil {
		return nil, err
	}
	if string(req.Data) == "null" {
		req.Data = nil
	}
	return &req, nil
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		refuseBody(w, r)
		w.Header().Set("Allow", allow)
		writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" not allowed; use "+allow)
	}
}

// refuseBody makes the answer to r, which is about to be refused, end its
// connection without reading the rest of r's body: net/http would
// otherwise read up to 256 KiB of an unread body before it writes the
// answer, so a client trickling a body it has no right to send would
// hold the connection for as long as it likes (or until the server's
// ReadTimeout). Call it before writing the answer. It does nothing for a
// request without a body, or over HTTP/2 (whose streams are cheap to
// reset).
func refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.ProtoMajor != 1 {
		return
	}
	w.Header().Set("Connection", "close")
	// Reads of the body from now on fail at once, so neither the answer
	// nor the connection's end waits for the client.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}
