package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
