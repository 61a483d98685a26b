package herald_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/bench/loadgen"
	"github.com/heraldrt/herald/internal/testserver"
	redissession "github.com/heraldrt/herald/session/redis"
)

// BenchmarkHandshake measures complete authenticated upgrades over
// loopback (TCP connect, HTTP upgrade, JWT verification, welcome frame,
// close), with HS256 and with ES256 tokens. Client and server share the
// machine, so compare the two lines with each other, not with other hosts.
func BenchmarkHandshake(b *testing.B) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	file := filepath.Join(b.TempDir(), "ec.pem")
	_ = os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret, PublicKeyFile: file})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	ts := startServer(b, herald.Config{Authenticator: a, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	now := time.Now()
	c := gojwt.MapClaims{"sub": "bench", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	hs, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, c).SignedString(testSecret)
	es, _ := gojwt.NewWithClaims(gojwt.SigningMethodES256, c).SignedString(ek)

	for _, tc := range []struct{ name, token string }{{"HS256", hs}, {"ES256", es}} {
		b.Run(tc.name, func(b *testing.B) {
			opts := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tc.token}}}
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				conn, _, err := websocket.Dial(ctx, ts.URL, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := conn.Read(ctx); err != nil { // welcome
					b.Fatal(err)
				}
				_ = conn.CloseNow()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkConnect is one connect of herald bench's churn scenario in one
// process: TCP connect, upgrade with an HS256 token in Authorization:
// Bearer, the welcome, a close frame and a reset (no TIME_WAIT). The
// client is the load generator's minimal one, so most of the time is the
// server's. memory: the default stores; redis: sessions and presence on
// a redis-server of the benchmark's own (the store's Presence, so a
// connect's two writes take one round trip), as herald serve --redis-url
// keeps them; redis-separate: the presence on connections of its own, a
// round trip each, as before session.Opener; -serve: through
// Server.Serve's own accept path instead of net/http. Serial connects over loopback: compare the lines with each
// other, and with benchstat, not with other machines.
func BenchmarkConnect(b *testing.B) {
	tok, err := jwtauth.Sign(testSecret, "bench-user", nil, nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	redis := func(b *testing.B) herald.Config {
		r := testserver.StartRedis(b)
		st, err := redissession.New(redissession.Config{URL: r.URL()})
		if err != nil {
			b.Fatal(err)
		}
		return herald.Config{Sessions: st, Presence: st.Presence(0)}
	}
	for _, tc := range []struct {
		name   string
		stores func(b *testing.B) herald.Config
		serve  bool // through Server.Serve's accept path instead of net/http
	}{
		{"memory", func(*testing.B) herald.Config { return herald.Config{} }, false},
		{"memory-serve", func(*testing.B) herald.Config { return herald.Config{} }, true},
		{"redis-serve", redis, true},
		{"redis", redis, false},
		{"redis-separate", func(b *testing.B) herald.Config {
			// As before session.Opener: a presence registry on its own
			// connections, a round trip for the session and one for
			// the presence entry.
			r := testserver.StartRedis(b)
			st, err := redissession.New(redissession.Config{URL: r.URL()})
			if err != nil {
				b.Fatal(err)
			}
			pr, err := redissession.NewPresence(redissession.Config{URL: r.URL()})
			if err != nil {
				b.Fatal(err)
			}
			return herald.Config{Sessions: st, Presence: pr}
		}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			cfg := tc.stores(b)
			cfg.Authenticator = a
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
			url := ""
			if tc.serve {
				url = "ws://" + startRawServer(b, cfg, true).addr + "/ws"
			} else {
				url = startServer(b, cfg).URL
			}
			opts := loadgen.DialOptions{Header: http.Header{"Authorization": {"Bearer " + tok}}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, err := loadgen.Dial(ctx, url, opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := loadgen.KindHerald.Open(c, 10*time.Second); err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
		})
	}
}
