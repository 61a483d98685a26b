package herald

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// originAllowed reports whether a browser upgrade from r's Origin may
// proceed. Requests without Origin (non-browser clients) and same-origin
// requests always may. A cross-origin request may when its origin matches
// Config.AllowedOrigins; with none configured it may unless the credential
// came from a cookie, which a browser attaches to cross-site requests too
// (cross-site WebSocket hijacking).
func (s *Server) originAllowed(r *http.Request, cookieAuth bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		return !cookieAuth
	}
	for _, p := range s.cfg.AllowedOrigins {
		if matchOrigin(p, origin, u.Host) {
			return true
		}
	}
	return false
}

// matchOrigin matches an allow-list pattern: "*", a full origin
// ("https://app.example.com") or a host pattern ("*.example.com").
func matchOrigin(pattern, origin, host string) bool {
	pattern = strings.ToLower(strings.TrimSpace(pattern))
	if pattern == "*" {
		return true
	}
	if strings.Contains(pattern, "://") {
		return pattern == strings.ToLower(origin)
	}
	ok, _ := path.Match(pattern, strings.ToLower(host))
	return ok
}
