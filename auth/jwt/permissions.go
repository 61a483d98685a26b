package jwt

import (
	"strings"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/protocol"
)

// Permissions are the room rights a token grants; Verify sets them on the
// identity. Rooms and Publish hold patterns: "*" matches every room,
// "prefix*" every room starting with prefix, anything else only itself.
//
// A subject may join a room a Rooms pattern matches, any room starting with
// PublicPrefix, and its own user room ("user:"+Subject). It may publish to
// a room a Publish pattern matches and to its own user room. No pattern
// grants another user's "user:" room. A Permissions is read-only once
// built and safe for concurrent use.
type Permissions struct {
	Subject      string
	Rooms        []string
	Publish      []string
	PublicPrefix string
}

var _ auth.Permissions = (*Permissions)(nil)

// CanJoin implements auth.Permissions.
func (p *Permissions) CanJoin(room string) bool {
	if protocol.IsUserRoom(room) {
		return room == protocol.UserRoom(p.Subject)
	}
	if p.PublicPrefix != "" && strings.HasPrefix(room, p.PublicPrefix) {
		return true
	}
	return matchAny(p.Rooms, room)
}

// CanPublish implements auth.Permissions.
func (p *Permissions) CanPublish(room string) bool {
	if protocol.IsUserRoom(room) {
		return room == protocol.UserRoom(p.Subject)
	}
	return matchAny(p.Publish, room)
}

func matchAny(patterns []string, room string) bool {
	for _, p := range patterns {
		if Match(p, room) {
			return true
		}
	}
	return false
}

// Match reports whether room matches pattern: "*" matches any room,
// "chat:*" any room starting with "chat:" (a '*' is a wildcard only as the
// last character), anything else only the identical room. An empty pattern
// or room never matches.
func Match(pattern, room string) bool {
	if pattern == "" || room == "" {
		return false
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(room, prefix)
	}
	return pattern == room
}
