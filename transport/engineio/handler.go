package engineio

import (
	"net/http"

	"github.com/heraldrt/herald/internal/query"
	eio "github.com/heraldrt/herald/protocol/engineio"
	"github.com/heraldrt/herald/transport"
)

// ServeHTTP serves one Engine.IO request: a handshake, a poll (GET), a
// post of packets (POST), or a WebSocket opening a session or upgrading
// one. Requests are checked in the reference server's order (transport,
// sid, method, protocol version) and refused with its error codes. A
// sid this server does not know (e.g. a poll that a load balancer sent
// to another node) gets 400 {"code":1,"message":"Session ID unknown"}
// at once.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The parameters are read one by one: parsing the query into a map
	// cost each handshake about 400 B.
	name := query.Get(r.URL.RawQuery, "transport")
	sid := query.Get(r.URL.RawQuery, "sid")
	upgrade := r.Header.Get("Upgrade") != ""

	if r.Method == http.MethodOptions && len(s.cfg.CORS.Origins) > 0 {
		s.cfg.CORS.setHeaders(w, r, true)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.cfg.CORS.setHeaders(w, r, false)
	refuse := s.writeError
	if upgrade {
		refuse = s.refuseUpgrade
	}
	if !s.enter() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()

	var ws bool
	switch {
	case name == "polling" && !s.cfg.DisablePolling:
	case name == "websocket" && !s.cfg.DisableWebSocket:
		ws = true
	default:
		refuse(w, eio.UnknownTransport, "")
		return
	}
	// A WebSocket transport request that is not a valid upgrade is a bad
	// request, as is an upgrade for the polling transport.
	if ws && transport.CheckHandshake(r) != nil || !ws && upgrade {
		refuse(w, eio.BadRequest, "")
		return
	}

	if sid != "" {
		so := s.Socket(sid)
		if so == nil {
			refuse(w, eio.UnknownSID, "")
			return
		}
		if ws {
			so.upgradeRequest(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			so.poll(w, r)
		case http.MethodPost:
			so.post(w, r)
		default:
			refuse(w, eio.BadRequest, "")
		}
		return
	}

	if r.Method != http.MethodGet {
		refuse(w, eio.BadHandshakeMethod, "")
		return
	}
	if query.Get(r.URL.RawQuery, "EIO") != "4" {
		refuse(w, eio.UnsupportedProtocolVersion, "")
		return
	}
	if !ws && !s.reservePolling() {
		err := ErrPollingFull
		if s.cfg.PollingFull != nil {
			if e := s.cfg.PollingFull(r); e != nil {
				err = e
			}
		}
		refuse(w, eio.Forbidden, err.Error())
		return
	}
	if s.cfg.AllowRequest != nil {
		if err := s.cfg.AllowRequest(r); err != nil {
			if !ws {
				s.stats.polling.Add(-1) // the place reservePolling took
			}
			refuse(w, eio.Forbidden, err.Error())
			return
		}
	}
	if ws {
		s.openWebSocket(w, r)
	} else {
		s.openPolling(w, r)
	}
}

// reservePolling counts a polling handshake in Polling, from now on,
// if that keeps it within Config.MaxPolling: the place is taken before
// the handshake is vetted and its session made, so that handshakes at
// once cannot all find the last one free. openPolling's session keeps
// it; a handshake that does not open one gives it back.
func (s *Server) reservePolling() bool {
	max := int64(s.cfg.MaxPolling)
	if max <= 0 {
		s.stats.polling.Add(1)
		return true
	}
	for {
		n := s.stats.polling.Load()
		if n >= max {
			return false
		}
		if s.stats.polling.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// setCookie adds the sticky-session cookie, if configured, to h.
func (s *Server) setCookie(h http.Header, sid string) {
	if s.cfg.Cookie == "" {
		return
	}
	c := http.Cookie{Name: s.cfg.Cookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	h.Add("Set-Cookie", c.String())
}
