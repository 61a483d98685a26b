package jwt

import (
	"net/http"
	"strings"
)

// Token sources ExtractToken reports, in the order it tries them.
const (
	SourceCookie      = "cookie"
	SourceHeader      = "header"
	SourceSubprotocol = "subprotocol"
	SourceQuery       = "query"
)

// SubprotocolPrefix marks the Sec-WebSocket-Protocol value that carries the
// token: a browser offers "bearer.<token>" next to the real subprotocol.
const SubprotocolPrefix = "bearer."

// ExtractToken finds the token on an upgrade request and says where it was:
// the cookie cfg.CookieName, then "Authorization: Bearer", then a
// "bearer.<token>" Sec-WebSocket-Protocol value, then the "token" query
// parameter unless cfg.DisableQueryToken. The first source that holds a
// non-empty token wins even if the token is bad: sources are never mixed.
// It returns "", "" when there is none. Zero cfg fields take their defaults.
func ExtractToken(r *http.Request, cfg Config) (token, source string) {
	name := cfg.CookieName
	if name == "" {
		name = DefaultCookieName
	}
	// net/http keeps spaces inside cookie values ("token= abc" gives
	// " abc"); no token has any.
	if c, err := r.Cookie(name); err == nil {
		if t := strings.TrimSpace(c.Value); t != "" {
			return t, SourceCookie
		}
	}
	if t := bearer(r.Header.Get("Authorization")); t != "" {
		return t, SourceHeader
	}
	if t, _ := TokenFromSubprotocols(r.Header.Values("Sec-Websocket-Protocol")); t != "" {
		return t, SourceSubprotocol
	}
	if !cfg.DisableQueryToken && r.URL != nil {
		if t := r.URL.Query().Get("token"); t != "" {
			return t, SourceQuery
		}
	}
	return "", ""
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header value (the scheme is case-insensitive, RFC 7235 §2.1).
func bearer(h string) string {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

// TokenFromSubprotocols reads the Sec-WebSocket-Protocol header values of
// an upgrade request (each a comma-separated list). Browsers cannot set
// headers on a WebSocket, so a client offers two subprotocols, e.g.
//
//	new WebSocket(url, ["herald.v1", "bearer." + token])
//
// token is what follows the first "bearer." entry; echo is the first other
// entry, the subprotocol the server must select in its response (a browser
// fails the connection when it offered subprotocols and none is selected;
// selecting the bearer entry would copy the token into the response). Both
// are empty when absent.
func TokenFromSubprotocols(values []string) (token, echo string) {
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if len(p) >= len(SubprotocolPrefix) && strings.EqualFold(p[:len(SubprotocolPrefix)], SubprotocolPrefix) {
				if token == "" {
					token = p[len(SubprotocolPrefix):]
				}
				continue
			}
			if echo == "" {
				echo = p
			}
		}
	}
	return token, echo
}
