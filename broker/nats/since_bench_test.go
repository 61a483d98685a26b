package nats_test

import (
	"testing"

	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/nats"
	"github.com/heraldrt/herald/internal/testserver"
)

// BenchmarkSince: the history reads of a join (brokertest.BenchSince).
func BenchmarkSince(b *testing.B) {
	srv := testserver.StartNATS(b)
	brokertest.BenchSince(b, newBroker(b, nats.Config{URL: srv.URL()}))
}
