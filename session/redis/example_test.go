package redis_test

import (
	"context"
	"log"
	"time"

	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/session/redis"
)

func ExampleNew() {
	st, err := redis.New(redis.Config{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	s := &session.Session{ID: "s1", UserID: "u1", Node: "node-a", ConnectedAt: now, LastSeen: now}
	if err := st.Save(ctx, s, 2*time.Minute); err != nil {
		log.Fatal(err)
	}
	// On every sign of life:
	if err := st.Touch(ctx, s.ID, time.Now(), 2*time.Minute); err != nil {
		log.Fatal(err)
	}
}
