package herald

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldrt/herald/internal/metrics"
)

// TestConnMetricsCache: the cached children count into the vectors'
// own children, which /metrics reports.
func TestConnMetricsCache(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.NewRegistry())
	cm := newConnMetrics(m)
	for range 2 {
		cm.closed.get("normal").Inc()
		cm.out.get("welcome").Inc()
		cm.proto(protocolSocketIO).opened.Inc()
		cm.proto(protocolV1).closed.get("connection_lost").Inc()
	}
	cm.proto(protocolV1).conns.Inc()
	for name, got := range map[string]float64{
		"closed normal":                 testutil.ToFloat64(m.ConnectionsClosed.WithLabelValues("normal")),
		"out welcome":                   testutil.ToFloat64(m.MessagesOut.WithLabelValues("welcome")),
		"socketio opened":               testutil.ToFloat64(m.ProtocolConnectionsOpened.WithLabelValues(protocolSocketIO)),
		"v1 closed connection_lost":     testutil.ToFloat64(m.ProtocolConnectionsClosed.WithLabelValues(protocolV1, "connection_lost")),
		"v1 connections (one, not two)": 2 * testutil.ToFloat64(m.ProtocolConnections.WithLabelValues(protocolV1)),
	} {
		if got != 2 {
			t.Errorf("%s: %v, want 2", name, got)
		}
	}
}
