package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

func TestTokenCommandSignsVerifiableToken(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	t.Setenv("HERALD_JWT_SECRET", secret)
	var out, errb bytes.Buffer
	if code := run([]string{"token", "--sub", "alice", "--rooms", "chat:*", "--ttl", "1h"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	id, claims, err := a.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if id.UserID != "alice" || !id.CanJoin("chat:lobby") || id.CanJoin("admin") || len(claims.Rooms) != 1 {
		t.Fatalf("identity %+v claims %+v", id, claims)
	}
	if code := run([]string{"token", "--rooms", "x"}, &out, &errb); code != 2 {
		t.Fatalf("missing --sub: exit %d", code)
	}
	t.Setenv("HERALD_JWT_SECRET", "")
	if code := run([]string{"token", "--sub", "a"}, &out, &errb); code != 2 {
		t.Fatalf("missing secret: exit %d", code)
	}
}

// TestTokenRefusesALifetimeTheServerRejects: --ttl past the server's
// --jwt-max-lifetime (24h by default) is refused with the reason, instead
// of printing a token the server answers lifetime_too_long; giving the
// server's longer limit (flag or the variable the server reads) allows it.
func TestTokenRefusesALifetimeTheServerRejects(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	t.Setenv("HERALD_JWT_SECRET", secret)
	code, out, errs := runCmd("token", "--sub", "alice", "--ttl", "48h")
	if code != 2 || out != "" || !strings.Contains(errs, "--ttl 48h is longer than the server accepts (--jwt-max-lifetime 24h)") ||
		!strings.Contains(errs, "lifetime_too_long") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// What the refusal spares: the default server does reject such a token.
	tok, err := jwtauth.Sign([]byte(secret), "alice", nil, nil, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	def, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if _, _, err := def.Verify(tok); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Fatalf("the default server accepted a 48h token: %v", err)
	}

	long, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: []byte(secret), MaxLifetime: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	for _, args := range [][]string{{"--jwt-max-lifetime", "72h"}, nil} {
		if args == nil {
			t.Setenv("HERALD_JWT_MAX_LIFETIME", "72h")
		}
		code, out, errs := runCmd(append([]string{"token", "--sub", "alice", "--ttl", "48h"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		if _, _, err := long.Verify(strings.TrimSpace(out)); err != nil {
			t.Fatalf("%v: a server with --jwt-max-lifetime 72h rejects the token: %v", args, err)
		}
	}
}

// TestTokenReadsServesConfigFile: `herald token --config FILE` takes the
// secret, issuer, audience and longest lifetime from serve's own config
// file (skipping its other keys), so the token verifies with the
// authenticator serve builds from that same file; a flag still wins over
// the file, and a key neither command knows is still an error.
func TestTokenReadsServesConfigFile(t *testing.T) {
	for _, v := range []string{"HERALD_JWT_SECRET", "HERALD_JWT_ISSUER", "HERALD_JWT_AUDIENCE", "HERALD_JWT_MAX_LIFETIME", "HERALD_CONFIG"} {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)  // a variable set, even empty, wins over the file
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "herald.yaml")
	conf := "addr: 127.0.0.1:0\ndrain-timeout: 45s\nredis-url: \"\"\nmax-rooms: 64\n" +
		"jwt-secret: 0123456789abcdef0123456789abcdef\njwt-issuer: https://auth.example.com\n" +
		"jwt-audience: herald\njwt-max-lifetime: 2h\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := parseServe([]string{"--config", file}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("serve reads the file: %v", err)
	}
	srv, err := jwtauth.New(context.Background(), sc.jwt)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	code, out, errs := runCmd("token", "--config", file, "--sub", "alice", "--rooms", "chat:*", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	id, claims, err := srv.Verify(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("serve's authenticator refuses the token made from its config file: %v", err)
	}
	if id.UserID != "alice" || claims.Issuer != "https://auth.example.com" {
		t.Fatalf("identity %+v claims %+v", id, claims)
	}

	// The file's jwt-max-lifetime bounds --ttl as it bounds serve.
	if code, _, errs := runCmd("token", "--config", file, "--sub", "alice", "--ttl", "3h"); code != 2 ||
		!strings.Contains(errs, file+": jwt-max-lifetime 2h") {
		t.Fatalf("--ttl past the file's jwt-max-lifetime: exit %d: %s", code, errs)
	}
	// --issuer wins over the file (the server then refuses the token).
	code, out, errs = runCmd("token", "--config", file, "--sub", "alice", "--issuer", "someone-else")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, _, err := srv.Verify(strings.TrimSpace(out)); err == nil {
		t.Fatal("a token with another issuer verifies")
	}
	// The environment wins over the file, as for serve.
	t.Setenv("HERALD_JWT_SECRET", "fedcba9876543210fedcba9876543210")
	code, out, errs = runCmd("token", "--config", file, "--sub", "alice")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, _, err := srv.Verify(strings.TrimSpace(out)); err == nil {
		t.Fatal("the file's secret won over HERALD_JWT_SECRET")
	}

	// A key no command knows is a mistake, named as in serve.
	bad := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(bad, []byte(conf+"jwt-secrte: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd("token", "--config", bad, "--sub", "alice"); code != 2 || !strings.Contains(errs, `unknown key "jwt-secrte"`) {
		t.Fatalf("unknown key: exit %d: %s", code, errs)
	}
}
