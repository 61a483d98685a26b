package herald

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldrt/herald/admin"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
)

// adminState is the server's part in the admin console (package admin):
// the responder every node has, and the console when Config.Admin is set.
type adminState struct {
	started time.Time
	version string
	resp    *admin.Responder
	console *admin.Console // nil unless Config.Admin is set
}

// startAdmin sets up the responder and, when configured, the console; it
// starts nothing that runs.
func (s *Server) startAdmin() error {
	s.admin.started = time.Now()
	s.admin.version = s.cfg.Version
	if s.admin.version == "" {
		s.admin.version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			s.admin.version = bi.Main.Version
		}
	}
	node := adminNode{s}
	s.admin.resp = admin.NewResponder(node, s.log)
	if s.cfg.Admin == nil {
		return nil
	}
	c, err := admin.New(*s.cfg.Admin, node, s.admin.resp, s.log, s.registry)
	if err != nil {
		return err
	}
	s.admin.console = c
	s.mux.Handle(admin.Prefix, c)
	return nil
}

// stopAdminConsole ends the console's event tails (at the start of a
// drain); stopAdmin waits for the answers under way (before the broker
// closes).
func (s *Server) stopAdminConsole() {
	if s.admin.console != nil {
		s.admin.console.Close()
	}
}

func (s *Server) stopAdmin() {
	if s.admin.resp != nil {
		s.admin.resp.Close()
	}
}

// adminNode is the Server as the console sees it (admin.Node).
type adminNode struct{ s *Server }

var _ admin.Node = adminNode{}

func (n adminNode) ID() string { return n.s.cfg.NodeID }

func (n adminNode) LocalStats(ctx context.Context) admin.NodeStats {
	s := n.s
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := admin.NodeStats{
		Node:        s.cfg.NodeID,
		Version:     s.admin.version,
		StartedAt:   s.admin.started,
		UptimeSec:   time.Since(s.admin.started).Seconds(),
		Connections: s.Connections(),
		Rooms:       s.hub.Rooms(),
		Draining:    s.draining.Load(),
		Broker:      "up",
		Console:     s.admin.console != nil,
		HeapBytes:   ms.HeapAlloc,
		SysBytes:    ms.Sys,
		Goroutines:  runtime.NumGoroutine(),
		NumGC:       ms.NumGC,
		GCCPUFrac:   ms.GCCPUFraction,
	}
	if ms.NumGC > 0 {
		st.GCPauseMs = float64(ms.PauseNs[(ms.NumGC+255)%256]) / 1e6
	}
	hctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := s.broker.Health(hctx); err != nil {
		st.Broker = "down: " + err.Error()
	}
	st.MessagesIn, _ = counterTotals(s.metrics.MessagesIn)
	st.MessagesOut, _ = counterTotals(s.metrics.MessagesOut)
	_, st.Disconnects = counterTotals(s.metrics.ConnectionsClosed)
	return st
}

// counterTotals returns the sum of vec's counters and each one's value
// by its first label.
func counterTotals(vec *prometheus.CounterVec) (float64, map[string]float64) {
	ch := make(chan prometheus.Metric, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); vec.Collect(ch); close(ch) }()
	total, by := 0.0, map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || d.Counter == nil {
			continue
		}
		v := d.Counter.GetValue()
		total += v
		if len(d.Label) > 0 {
			by[d.Label[0].GetValue()] += v
		}
	}
	wg.Wait()
	return total, by
}

func (n adminNode) LocalConns(q admin.ConnQuery, limit int) []admin.ConnInfo {
	out := []admin.ConnInfo{}
	conns := n.s.snapshot()
	if q.User != "" {
		conns = n.s.connsOf(q.User, "")
	}
	for _, c := range conns {
		if len(out) >= limit {
			break
		}
		if (q.User != "" && c.info.UserID != q.User) || (q.ID != "" && c.info.ID != q.ID) ||
			(q.CorrelationID != "" && c.info.CorrelationID != q.CorrelationID) {
			continue
		}
		c.identMu.Lock()
		rooms := append([]string{}, c.rooms...)
		c.identMu.Unlock()
		if q.Room != "" && !roomSet(rooms).has(q.Room) && !c.isUserRoom(q.Room) {
			continue
		}
		pending := 0
		c.acks.mu.Lock()
		if c.acks.p != nil {
			pending = len(c.acks.p.byID)
		}
		c.acks.mu.Unlock()
		sid, _ := c.sessionID()
		out = append(out, admin.ConnInfo{
			Node: n.s.cfg.NodeID, ID: c.info.ID, User: c.info.UserID, CorrelationID: c.info.CorrelationID,
			SessionID: sid, RemoteAddr: c.info.RemoteAddr, Rooms: rooms, ConnectedAt: c.info.ConnectedAt,
			LastSeen: c.link.LastSeen(), Protocol: adminProtocol(c.link.protocol()), Compressed: c.link.Compressed(),
			PendingAcks: pending, Queued: c.link.Queued(),
		})
	}
	return out
}

func (n adminNode) LocalRooms(prefix string, limit int) []admin.RoomInfo {
	out := []admin.RoomInfo{}
	for _, room := range n.s.hub.RoomNames(prefix, limit) {
		members := 0
		n.s.hub.EachMember(room, func(m hub.Member) {
			if _, ok := memberConn(m); ok { // not the console's own tails
				members++
			}
		})
		if members > 0 {
			out = append(out, admin.RoomInfo{Room: room, Node: n.s.cfg.NodeID, Members: members})
		}
	}
	return out
}

func (n adminNode) LocalMembers(room string, limit int) []admin.MemberInfo {
	counts := map[string]int{}
	n.s.hub.EachMember(room, func(m hub.Member) {
		if c, ok := memberConn(m); ok {
			counts[c.info.UserID]++
		}
	})
	out := []admin.MemberInfo{}
	for u, k := range counts {
		if len(out) >= limit {
			break
		}
		out = append(out, admin.MemberInfo{Node: n.s.cfg.NodeID, User: u, Connections: k})
	}
	return out
}

func (n adminNode) LocalDisconnect(id, reason string) bool {
	for _, c := range n.s.snapshot() {
		if c.info.ID == id {
			c.closeWith(protocol.CloseDisconnected, reason)
			return true
		}
	}
	return false
}

func (n adminNode) Drain() {
	s := n.s
	s.log.Warn("drain requested from the admin console")
	if f := s.cfg.OnDrainRequest; f != nil {
		f()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout+5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			s.log.Error("drain requested from the admin console finished with errors", "err", err)
		}
	}()
}

func (n adminNode) Control(ctx context.Context, c *broker.Control) error {
	return n.s.broker.PublishControl(ctx, c)
}

func (n adminNode) Publish(ctx context.Context, room, event string, data json.RawMessage, cid string) (string, error) {
	return n.s.publish(ctx, room, event, data, pubMeta{cid: cid})
}

func (n adminNode) DisconnectUser(ctx context.Context, user, reason string) error {
	return n.s.DisconnectUser(ctx, user, reason)
}

func (n adminNode) Revoke(ctx context.Context, jti, sub, reason string) error {
	return n.s.Revoke(ctx, RevokeRequest{TokenID: jti, User: sub, Reason: reason})
}

func (n adminNode) Presence(ctx context.Context, room string) ([]admin.PresenceEntry, error) {
	entries, err := n.s.presence.List(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]admin.PresenceEntry, len(entries))
	for i, e := range entries {
		out[i] = admin.PresenceEntry{User: e.User, Connections: e.Connections}
	}
	return out, nil
}

// History reads room's last limit messages from the engine's history:
// first its current position, then the messages after the position
// limit before it. When some of those were trimmed or expired it asks
// for half as many, down to none.
func (n adminNode) History(ctx context.Context, room string, limit int) ([]*broker.Message, error) {
	h, ok := n.s.broker.(broker.Historian)
	if !ok || len(n.s.cfg.History) == 0 || historyFunc(n.s.cfg.History)(room).Size == 0 {
		return nil, admin.ErrNoHistory
	}
	_, cur, err := h.Since(ctx, room, broker.Position{}, 0)
	if err != nil {
		return nil, err
	}
	for window := uint64(limit); window > 0; window /= 2 {
		from := broker.Position{Epoch: cur.Epoch}
		if cur.Offset > window {
			from.Offset = cur.Offset - window
		}
		msgs, _, err := h.Since(ctx, room, from, limit)
		if errors.Is(err, broker.ErrUnrecoverable) {
			continue
		}
		return msgs, err
	}
	return nil, nil
}

func (n adminNode) Tail(ctx context.Context, room string, m hub.Member) (func(), error) {
	if _, err := n.s.hub.Join(ctx, room, m); err != nil {
		return nil, err
	}
	return func() {
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.s.hub.Leave(lctx, room, m); err != nil {
			n.s.log.Debug("admin tail: leave failed", "room", room, "err", err)
		}
	}, nil
}

// adminProtocol is how the console names a connection's protocol.
func adminProtocol(p string) string {
	if p == protocolV1 {
		return "herald v" + strconv.Itoa(protocol.Version)
	}
	return p
}
