package jwt_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/heraldrt/herald/auth/jwt"
)

func ExampleNew() {
	secret := []byte("an-hs256-secret-of-32-bytes-min!")
	a, err := jwt.New(context.Background(), jwt.Config{Secret: secret, DisableQueryToken: true})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	tok, err := jwt.Sign(secret, "alice", []string{"chat:*"}, []string{"chat:general"}, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Authorization", "Bearer "+tok)

	id, err := a.Authenticate(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.UserID, id.CanJoin("chat:random"), id.CanPublish("chat:random"), id.CanJoin("user:bob"))
	// Output: alice true false false
}

func ExampleTokenFromSubprotocols() {
	// A browser: new WebSocket(url, ["herald.v1", "bearer." + token])
	token, echo := jwt.TokenFromSubprotocols([]string{"herald.v1, bearer.eyJhbGciOi.e30.sig"})
	fmt.Println(token)
	fmt.Println(echo) // the server selects this one, never the bearer entry
	// Output:
	// eyJhbGciOi.e30.sig
	// herald.v1
}
