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
