package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/protocol"
)

// done logs a carried-out action with the admin's session and answers v.
func (c *Console) done(w http.ResponseWriter, r *http.Request, a admin, action string, v map[string]any, attrs ...any) {
	c.actions.WithLabelValues(action).Inc()
	c.log.Info("admin action", append([]any{"action", action, "admin_session", a.label, "remote", r.RemoteAddr}, attrs...)...)
	v["action"] = action
	v["session"] = a.label
	writeJSON(w, http.StatusOK, v)
}

// failed logs an action the cluster did not carry out and answers status.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, a admin, action string, status int, code, msg string) {
	c.log.Warn("admin action failed", "action", action, "admin_session", a.label, "remote", r.RemoteAddr, "error", msg)
	writeError(w, status, code, msg)
}

func (c *Console) servePublish(w http.ResponseWriter, r *http.Request, a admin) {
	var req struct {
		Room  string          `json:"room,omitempty"`
		User  string          `json:"user,omitempty"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data,omitempty"`
	}
	if err := decode(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	room := req.Room
	switch {
	case (req.Room == "") == (req.User == ""):
		writeError(w, http.StatusBadRequest, "bad_request", `give exactly one of "room" or "user"`)
		return
	case req.User != "":
		room = protocol.UserRoomPrefix + req.User
	}
	if err := protocol.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if err := protocol.ValidateEvent(req.Event); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if string(req.Data) == "null" {
		req.Data = nil
	}
	cid := "admin-" + id.New(10)
	msgID, err := c.node.Publish(r.Context(), room, req.Event, req.Data, cid)
	if err != nil {
		c.failed(w, r, a, "publish", http.StatusServiceUnavailable, "publish_failed", "message not published: "+err.Error())
		return
	}
	c.done(w, r, a, "publish", map[string]any{"msgId": msgID, "room": room, "correlationId": cid},
		"room", room, "event", req.Event, "msg_id", msgID, "correlation_id", cid)
}

func (c *Console) serveDisconnect(w http.ResponseWriter, r *http.Request, a admin) {
	var req struct {
		Conn   string `json:"conn,omitempty"`
		User   string `json:"user,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	if err := decode(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	reason := nonEmpty(req.Reason, "disconnected by an admin")
	switch {
	case (req.Conn == "") == (req.User == ""):
		writeError(w, http.StatusBadRequest, "bad_request", `give exactly one of "conn" or "user"`)
	case req.User != "":
		if err := c.node.DisconnectUser(r.Context(), req.User, reason); err != nil {
			c.failed(w, r, a, "disconnect_user", http.StatusServiceUnavailable, "broker_unavailable", "not sent to the cluster: "+err.Error())
			return
		}
		c.done(w, r, a, "disconnect_user", map[string]any{"user": req.User}, "user", req.User, "reason", reason)
	default:
		data, _, err := c.gather(r.Context(), opDisconnect, queryArgs{Conn: req.Conn, Reason: reason})
		if err != nil && len(data) == 0 {
			c.failed(w, r, a, "disconnect", http.StatusServiceUnavailable, "broker_unavailable", "cluster not reachable: "+err.Error())
			return
		}
		node := ""
		for n, raw := range data {
			var res struct{ Closed bool }
			if json.Unmarshal(raw, &res) == nil && res.Closed {
				node = n
			}
		}
		if node == "" {
			c.failed(w, r, a, "disconnect", http.StatusNotFound, "not_found", "no node that answered has connection "+req.Conn)
			return
		}
		c.done(w, r, a, "disconnect", map[string]any{"conn": req.Conn, "node": node}, "conn_id", req.Conn, "on_node", node, "reason", reason)
	}
}

func (c *Console) serveRevoke(w http.ResponseWriter, r *http.Request, a admin) {
	var req struct {
		User    string `json:"sub,omitempty"`
		TokenID string `json:"jti,omitempty"`
		Reason  string `json:"reason,omitempty"`
	}
	if err := decode(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.User == "" && req.TokenID == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `give "sub" (a user), "jti" (a token id) or both`)
		return
	}
	reason := nonEmpty(req.Reason, "revoked by an admin")
	if err := c.node.Revoke(r.Context(), req.TokenID, req.User, reason); err != nil {
		c.failed(w, r, a, "revoke", http.StatusServiceUnavailable, "broker_unavailable", "revocation not propagated: "+err.Error())
		return
	}
	c.done(w, r, a, "revoke", map[string]any{"sub": req.User, "jti": req.TokenID}, "sub", req.User, "jti", req.TokenID, "reason", reason)
}

func (c *Console) serveDrain(w http.ResponseWriter, r *http.Request, a admin) {
	var req struct {
		Node string `json:"node"`
	}
	if err := decode(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if strings.TrimSpace(req.Node) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `"node" is required`)
		return
	}
	replies, err := c.resp.ask(r.Context(), opDrain, queryArgs{Node: req.Node}, map[string]bool{req.Node: true}, 2*queryWait)
	for _, rp := range replies {
		if rp.Node == req.Node && rp.Error == "" {
			c.done(w, r, a, "drain", map[string]any{"node": req.Node}, "target_node", req.Node)
			return
		}
	}
	msg := "node " + req.Node + " did not answer"
	if err != nil {
		msg += ": " + err.Error()
	}
	c.failed(w, r, a, "drain", http.StatusGatewayTimeout, "no_answer", msg)
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var errTailBusy = errors.New("admin: too many event tails open on this node")
