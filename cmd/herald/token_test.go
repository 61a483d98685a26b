package main

import (
	"bytes"
	"context"
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
