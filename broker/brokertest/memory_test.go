package brokertest_test

import (
	"testing"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMemory holds the reference engine to the conformance table; it lives
// here so that broker/memory stays free of test dependencies.
func TestMemory(t *testing.T) {
	brokertest.Run(t, func(*testing.T) broker.Broker { return memory.New() }, brokertest.SingleNode())
}

func BenchmarkPublish(b *testing.B) {
	brokertest.Bench(b, func(testing.TB) broker.Broker { return memory.New() })
}

// BenchmarkSince: the in-memory engine's history reads of a join, for
// comparison with Redis's and NATS's.
func BenchmarkSince(b *testing.B) { brokertest.BenchSince(b, memory.New()) }
