package redis_test

import (
	"testing"

	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
)

// BenchmarkSince: the history reads of a join (brokertest.BenchSince).
func BenchmarkSince(b *testing.B) {
	srv := testserver.StartRedis(b)
	brokertest.BenchSince(b, newBroker(b, redis.Config{URL: srv.URL()}))
}
