package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/protocol"
)

// maxRetryAfter bounds how long a server's Retry-After can make the
// Client wait before its next attempt.
const maxRetryAfter = 10 * time.Minute

// connect dials once and reads the welcome.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.handshakeTimeout)
	defer cancel()

	h := http.Header{}
	for k, vs := range c.opts.header {
		h[k] = append([]string(nil), vs...)
	}
	if c.opts.clientID != "" {
		h.Set("X-Client-Id", c.opts.clientID)
	}
	c.mu.Lock()
	if c.sessionID != "" && c.resumeToken != "" {
		// Ask any node to resume the session: same identity, rooms restored.
		h.Set("X-Herald-Session-Id", c.sessionID)
		h.Set("X-Herald-Resume-Token", c.resumeToken)
		// Rooms that keep history are joined again with their position
		// (see rejoin), not restored by the resume.
		h.Set("X-Herald-Recover", "1")
	}
	c.mu.Unlock()
	if c.opts.token != nil {
		tok, err := c.opts.token(ctx)
		if err != nil {
			return nil, fmt.Errorf("herald/client: token: %w", err)
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	lastSeen := new(atomic.Int64)
	lastSeen.Store(time.Now().UnixNano())
	ws, resp, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{
		HTTPClient:      c.opts.httpClient,
		HTTPHeader:      h,
		CompressionMode: websocket.CompressionNoContextTakeover,
		OnPingReceived: func(context.Context, []byte) bool {
			lastSeen.Store(time.Now().UnixNano())
			return true
		},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, handshakeError(resp, err)
		}
		return nil, err
	}
	ws.SetReadLimit(c.opts.readLimit)

	typ, b, err := ws.Read(ctx)
	if err != nil {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("herald/client: reading welcome: %w", err)
	}
	var w protocol.Welcome
	if typ != websocket.MessageText || json.Unmarshal(b, &w) != nil || w.Type != protocol.TypeWelcome {
		_ = ws.Close(websocket.StatusProtocolError, "expected welcome")
		return nil, fmt.Errorf("herald/client: first frame is not a welcome: %.100q", b)
	}
	cn := &conn{
		c:        c,
		ws:       ws,
		gen:      c.gen.Add(1),
		welcome:  w,
		out:      make(chan []byte, 64),
		done:     make(chan struct{}),
		shutdown: make(chan time.Duration, 1),
		lastSeen: lastSeen,
		started:  time.Now(),
	}
	c.mu.Lock()
	c.sessionID, c.userID, c.resumeToken, c.resumed = w.SessionID, w.UserID, w.ResumeToken, w.Resumed
	c.mu.Unlock()
	c.opts.log.Info("herald: connected", "url", c.url, "session_id", w.SessionID, "resumed", w.Resumed,
		"connection_id", w.ConnectionID, "user", w.UserID)
	if c.opts.onFrame != nil {
		c.queue <- item{frame: b, gen: cn.gen}
	}
	return cn, nil
}

// handshakeError describes a refused upgrade from the server's JSON body
// ({"error":..., "message":...}) and Retry-After.
func handshakeError(resp *http.Response, err error) *HandshakeError {
	he := &HandshakeError{StatusCode: resp.StatusCode, err: err}
	if resp.Body != nil {
		b, _ := io.ReadAll(resp.Body)
		var body struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &body) == nil {
			he.Code, he.Message = body.Error, body.Message
		}
	}
	if s, convErr := strconv.Atoi(resp.Header.Get("Retry-After")); convErr == nil && s > 0 {
		he.RetryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return he
}

// closeCode returns the close frame's code and reason in err, or -1.
func closeCode(err error) (int, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), ce.Reason
	}
	return -1, ""
}
