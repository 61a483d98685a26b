package jwt

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExtractToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    Config
		cookie string // raw Cookie header
		authz  string
		proto  []string
		query  string
		token  string
		source string
	}{
		{name: "nothing"},
		{name: "cookie", cookie: "token=c1", token: "c1", source: SourceCookie},
		{name: "quoted cookie", cookie: `token="c1"`, token: "c1", source: SourceCookie},
		{name: "other cookies around", cookie: "a=1; token=c1; b=2", token: "c1", source: SourceCookie},
		{name: "custom cookie name", cfg: Config{CookieName: "sess"}, cookie: "token=no; sess=c2", token: "c2", source: SourceCookie},
		{name: "empty cookie falls through", cookie: "token=", authz: "Bearer h1", token: "h1", source: SourceHeader},
		{name: "cookie beats header", cookie: "token=c1", authz: "Bearer h1", token: "c1", source: SourceCookie},
		{name: "bearer", authz: "Bearer h1", token: "h1", source: SourceHeader},
		{name: "BEARER", authz: "BEARER h1", token: "h1", source: SourceHeader},
		{name: "basic is ignored", authz: "Basic dXNlcjpwYXNz"},
		{name: "bearer without token", authz: "Bearer   "},
		{name: "header beats subprotocol", authz: "Bearer h1", proto: []string{"herald.v1, bearer.p1"}, token: "h1", source: SourceHeader},
		{name: "subprotocol", proto: []string{"herald.v1, bearer.p1"}, token: "p1", source: SourceSubprotocol},
		{name: "subprotocol in two headers", proto: []string{"bearer.p1", "herald.v1"}, token: "p1", source: SourceSubprotocol},
		{name: "subprotocol beats query", proto: []string{"bearer.p1"}, query: "token=q1", token: "p1", source: SourceSubprotocol},
		{name: "query", query: "token=q1", token: "q1", source: SourceQuery},
		{name: "query disabled", cfg: Config{DisableQueryToken: true}, query: "token=q1"},
		{name: "other query parameter", query: "access_token=q1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/ws?"+tt.query, nil)
			if tt.cookie != "" {
				r.Header.Set("Cookie", tt.cookie)
			}
			if tt.authz != "" {
				r.Header.Set("Authorization", tt.authz)
			}
			for _, p := range tt.proto {
				r.Header.Add("Sec-WebSocket-Protocol", p)
			}
			tok, src := ExtractToken(r, tt.cfg)
			if tok != tt.token || src != tt.source {
				t.Errorf("got %q from %q, want %q from %q", tok, src, tt.token, tt.source)
			}
		})
	}
}

func TestTokenFromSubprotocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string
		token  string
		echo   string
	}{
		{name: "none"},
		{name: "protocol only", values: []string{"herald.v1"}, echo: "herald.v1"},
		{name: "browser pair", values: []string{"herald.v1, bearer.abc.def.ghi"}, token: "abc.def.ghi", echo: "herald.v1"},
		{name: "token first", values: []string{"bearer.t", "herald.v1"}, token: "t", echo: "herald.v1"},
		{name: "token alone", values: []string{"bearer.t"}, token: "t"},
		{name: "first token wins", values: []string{"bearer.t1,bearer.t2,herald.v1"}, token: "t1", echo: "herald.v1"},
		{name: "spaces and empties", values: []string{" , herald.v1 ,  bearer.t ,"}, token: "t", echo: "herald.v1"},
		{name: "case-insensitive prefix", values: []string{"Bearer.t, herald.v1"}, token: "t", echo: "herald.v1"},
		{name: "bare prefix", values: []string{"bearer., herald.v1"}, echo: "herald.v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, echo := TokenFromSubprotocols(tt.values)
			if tok != tt.token || echo != tt.echo {
				t.Errorf("got (%q, %q), want (%q, %q)", tok, echo, tt.token, tt.echo)
			}
			if strings.HasPrefix(strings.ToLower(echo), SubprotocolPrefix) {
				t.Errorf("echo %q would reveal the token", echo)
			}
		})
	}
}
