package herald

import (
	"context"
	"time"

	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/session"
	memsession "github.com/heraldrt/herald/session/memory"
)

// localPresence is the default session.Presence. On one node the hub
// already holds every room's members, so presence is read from it
// instead of being recorded a second time: Add and Remove do nothing, and
// List counts the room's local connections by user. It sees this node
// only, as memory.Presence does; a cluster configures a shared registry
// (Config.Presence).
type localPresence struct{ hub *hub.Hub }

var _ session.Presence = localPresence{}

func (localPresence) Add(context.Context, string, string, string, string) error { return nil }

func (localPresence) Remove(context.Context, string, string, string) error { return nil }

func (p localPresence) List(_ context.Context, room string) ([]session.PresenceEntry, error) {
	counts := map[string]int{}
	p.hub.EachMember(room, func(m hub.Member) {
		if c, ok := memberConn(m); ok {
			counts[c.info.UserID]++
		}
	})
	return memsession.Entries(counts), nil
}

func (localPresence) KeepAlive(context.Context, string, time.Duration) error { return nil }

func (localPresence) Close() error { return nil }
