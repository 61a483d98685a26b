package redis_test

import (
	"context"
	"log"

	"github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/hub"
)

func ExampleNew() {
	b, err := redis.New(redis.Config{
		URL:           "redis://127.0.0.1:6379/0",
		PublishBuffer: 1000, // ride out short Redis outages
	})
	if err != nil {
		log.Fatal(err)
	}
	h := hub.New(hub.Config{Broker: b})
	if err := b.Start(context.Background(), h); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
}

func ExampleNew_cluster() {
	b, err := redis.New(redis.Config{
		ClusterAddrs: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = b // Start it with the node's Hub as Handler.
}
