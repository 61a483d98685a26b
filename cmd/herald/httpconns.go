package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// httpConnCap caps the concurrent HTTP connections (not upgraded to a
// WebSocket) that each client IP holds. A connection counts against the
// IP of its first request, as the Server's ClientIP sees it, from that
// request until it closes or is upgraded; an idle keep-alive connection
// still counts, until --http-idle-timeout ends it. A request over the cap
// is answered 429 and its connection closed. WebSocket upgrades are
// never refused here: --max-conns-per-ip and --upgrade-rate govern them.
type httpConnCap struct {
	max      int
	clientIP func(*http.Request) string
	refused  func()

	// counted is how many connections conns holds: a connection that
	// ends or is upgraded without having been counted (every WebSocket)
	// takes no lock while none is.
	counted atomic.Int64

	mu    sync.Mutex
	perIP map[string]int
	conns map[net.Conn]*httpConnSlot // the counted connections
}

// httpConnSlot is one connection's place in the count, and its context
// (ConnContext's answer, which it holds under slotKey): one allocation
// per connection, which enters conns only once its first request is
// counted. A WebSocket upgrade, which never is, costs no lock and no map
// entry (with the accept path, nothing else of net/http's per
// connection; 1 % of a connect's CPU under churn was this cap's).
type httpConnSlot struct {
	context.Context
	nc      net.Conn
	ip      string // "" until its first non-upgrade request is counted
	counted bool
}

// Value implements context.Context: the slot under slotKey.
func (s *httpConnSlot) Value(key any) any {
	if key == (slotKey{}) {
		return s
	}
	return s.Context.Value(key)
}

type slotKey struct{}

func newHTTPConnCap(max int, clientIP func(*http.Request) string, refused func()) *httpConnCap {
	return &httpConnCap{max: max, clientIP: clientIP, refused: refused,
		perIP: make(map[string]int), conns: make(map[net.Conn]*httpConnSlot)}
}

// connContext is the http.Server's ConnContext: it gives each connection
// its slot.
func (h *httpConnCap) connContext(ctx context.Context, nc net.Conn) context.Context {
	return &httpConnSlot{Context: ctx, nc: nc}
}

// connState is the http.Server's ConnState: a connection that closes or
// is upgraded leaves the count.
func (h *httpConnCap) connState(nc net.Conn, st http.ConnState) {
	// A connection's states and its requests come one after another
	// (on its serving goroutine): its own count, if admit made one, is
	// seen here.
	if st != http.StateClosed && st != http.StateHijacked || h.counted.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	slot := h.conns[nc]
	if slot == nil {
		return
	}
	delete(h.conns, nc)
	h.counted.Add(-1)
	slot.counted = false
	if h.perIP[slot.ip]--; h.perIP[slot.ip] <= 0 {
		delete(h.perIP, slot.ip)
	}
}

// handler wraps next with the cap.
func (h *httpConnCap) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slot, _ := r.Context().Value(slotKey{}).(*httpConnSlot)
		if slot == nil || isUpgrade(r) || h.admit(slot, h.clientIP(r)) {
			next.ServeHTTP(w, r)
			return
		}
		h.refused()
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		if r.ContentLength != 0 {
			// Do not read a body we refuse (see herald's API key check).
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}
		http.Error(w, "too many HTTP connections from this address (at most "+strconv.Itoa(h.max)+")", http.StatusTooManyRequests)
	})
}

// admit counts slot's connection against ip at its first request; false
// when ip is at the cap.
func (h *httpConnCap) admit(slot *httpConnSlot, ip string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if slot.counted {
		return true
	}
	if h.perIP[ip] >= h.max {
		return false
	}
	h.perIP[ip]++
	slot.ip, slot.counted = ip, true
	h.conns[slot.nc] = slot
	h.counted.Add(1)
	return true
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		if strings.EqualFold(strings.TrimSpace(v), "websocket") {
			return true
		}
	}
	return false
}
