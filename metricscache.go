package herald

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald/internal/metrics"
)

// connMetrics holds the children of the metric vectors that every
// connect and disconnect counts, resolved once: WithLabelValues hashes
// its label values and takes the vector's lock on each call, six times
// per connection. None of these vectors is ever reset or has a child
// deleted, so a child, once made, is the vector's for good.
type connMetrics struct {
	v1, socketIO protoMetrics
	closed       labelCounters // ConnectionsClosed, by reason
	out          labelCounters // MessagesOut, by type
}

// protoMetrics are one protocol's children of the connection metrics.
type protoMetrics struct {
	opened prometheus.Counter
	conns  prometheus.Gauge
	closed labelCounters // ProtocolConnectionsClosed, by reason
}

func newConnMetrics(m *metrics.Metrics) *connMetrics {
	cm := &connMetrics{
		closed: labelCounters{with: func(v string) prometheus.Counter { return m.ConnectionsClosed.WithLabelValues(v) }},
		out:    labelCounters{with: func(v string) prometheus.Counter { return m.MessagesOut.WithLabelValues(v) }},
	}
	for _, p := range []struct {
		pm    *protoMetrics
		proto string
	}{{&cm.v1, protocolV1}, {&cm.socketIO, protocolSocketIO}} {
		*p.pm = newProtoMetrics(m, p.proto)
	}
	return cm
}

func newProtoMetrics(m *metrics.Metrics, proto string) protoMetrics {
	return protoMetrics{
		opened: m.ProtocolConnectionsOpened.WithLabelValues(proto),
		conns:  m.ProtocolConnections.WithLabelValues(proto),
		closed: labelCounters{with: func(v string) prometheus.Counter {
			return m.ProtocolConnectionsClosed.WithLabelValues(proto, v)
		}},
	}
}

// proto returns the children of protocol proto.
func (cm *connMetrics) proto(proto string) *protoMetrics {
	switch proto {
	case protocolV1:
		return &cm.v1
	case protocolSocketIO:
		return &cm.socketIO
	}
	panic("herald: metrics of unknown protocol " + proto)
}

// labelCounters caches a counter vector's children by one label value
// (the others fixed by with).
type labelCounters struct {
	with func(string) prometheus.Counter
	mu   sync.RWMutex
	m    map[string]prometheus.Counter
}

// get returns the child for label value v.
func (l *labelCounters) get(v string) prometheus.Counter {
	l.mu.RLock()
	c, ok := l.m[v]
	l.mu.RUnlock()
	if ok {
		return c
	}
	c = l.with(v)
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]prometheus.Counter)
	}
	l.m[v] = c
	l.mu.Unlock()
	return c
}
