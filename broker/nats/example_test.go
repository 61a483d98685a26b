package nats_test

import (
	"context"
	"log"

	"github.com/heraldrt/herald/broker/nats"
	"github.com/heraldrt/herald/hub"
)

func ExampleNew() {
	b, err := nats.New(nats.Config{URL: "nats://127.0.0.1:4222"})
	if err != nil {
		log.Fatal(err)
	}
	h := hub.New(hub.Config{Broker: b})
	if err := b.Start(context.Background(), h); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
}
