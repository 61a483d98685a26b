package herald

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/protocol"
)

// upgradeHook asks OnUpgrade about an upgrade the Authenticator accepted
// and checks its answer: a user id that is no valid client id or data
// that is not JSON refuse the upgrade (500) rather than admit a
// connection the hook did not mean. Rooms that are no valid room names
// are logged and left out.
func (s *Server) upgradeHook(ctx context.Context, r *http.Request, ident *auth.Identity, ip, connID, cid string) (*UpgradeResult, error) {
	h := s.cfg.Hooks.OnUpgrade
	var res *UpgradeResult
	err := s.callHook(ctx, "on_upgrade", func() error {
		var err error
		res, err = h(ctx, &UpgradeRequest{Request: r, Identity: ident, ClientIP: ip, ConnID: connID, CorrelationID: cid})
		return err
	})
	if err != nil || res == nil {
		return nil, err
	}
	if res.UserID != "" && !auth.ValidClientID(res.UserID) {
		s.log.ErrorContext(ctx, "on_upgrade hook returned an invalid user id", "user", res.UserID)
		return nil, &UpgradeError{Status: http.StatusInternalServerError, Code: "internal", Message: "the connection could not be set up"}
	}
	if len(res.Data) > 0 && !json.Valid(res.Data) {
		s.log.ErrorContext(ctx, "on_upgrade hook returned data that is not JSON")
		return nil, &UpgradeError{Status: http.StatusInternalServerError, Code: "internal", Message: "the connection could not be set up"}
	}
	rooms := res.Rooms[:0:0]
	for _, room := range res.Rooms {
		if err := protocol.ValidateRoom(room); err != nil {
			s.log.WarnContext(ctx, "on_upgrade hook named an invalid room; not joined", "room", room, "err", err)
			continue
		}
		rooms = append(rooms, room)
	}
	out := *res
	out.Rooms = rooms
	return &out, nil
}

func nonZero(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// unjoined returns the rooms of rooms the connection is not in yet
// (its own user room included), within the per-connection limit.
func (c *conn) unjoined(rooms []string) []string {
	var out []string
	for _, room := range rooms {
		if c.isUserRoom(room) || c.rooms.has(room) || slices.Contains(out, room) || len(c.rooms)+len(out) >= c.s.cfg.MaxRoomsPerConn {
			continue
		}
		out = append(out, room)
	}
	return out
}

// hookError is the code and message a client is sent when an OnJoin or
// OnPublish hook refused its request with err.
func hookError(err error) (code, msg string) {
	var ee *EventError
	var hp errHookPanic
	switch {
	case errors.As(err, &hp):
		return protocol.CodeInternal, "internal error while checking the request"
	case errors.As(err, &ee):
		return ee.Code, ee.Message
	}
	return protocol.CodeForbidden, err.Error()
}
