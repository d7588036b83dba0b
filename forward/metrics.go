package forward

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one server's counters. Every series carries a source=NAME
// label (the source's name in the config), so several servers can register
// on one registry.
type metrics struct {
	connsOpen     prometheus.Gauge
	connsTotal    prometheus.Counter
	requests      [numModes]prometheus.Counter
	events        prometheus.Counter
	bytes         prometheus.Counter
	acks          prometheus.Counter
	ackLatency    prometheus.Histogram
	duplicates    prometheus.Counter
	heartbeatsUDP prometheus.Counter
	invalid       [numInvalid]prometheus.Counter
	errors        *prometheus.CounterVec
}

// newMetrics registers a server's metrics; inflated reads the bytes its
// decompression budget holds.
func newMetrics(reg prometheus.Registerer, source string, inflated func() float64) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // counted but not exported
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"source": source}, reg)
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "maruta", Subsystem: "forward", Name: name, Help: help})
	}
	m := &metrics{
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "maruta", Subsystem: "forward", Name: "connections",
			Help: "Open Forward connections.",
		}),
		connsTotal: counter("connections_total", "Forward connections accepted."),
		events:     counter("events_total", "Events handed downstream and accepted by it."),
		bytes:      counter("received_bytes_total", "Request bytes received, as sent (before decompression)."),
		acks:       counter("acks_total", "Acks sent."),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "maruta", Subsystem: "forward", Name: "ack_latency_seconds",
			Help: "Time from the read that completed a request with a chunk option to the write of its ack (the request's group commit included).",
			// The buckets of maruta_buffer_fsync_duration_seconds, so the two compare.
			Buckets: prometheus.ExponentialBuckets(0.000025, 1.5, 28),
		}),
		duplicates: counter("duplicate_events_total", "Events of resent requests (chunk id accepted recently, option dedup) acked again but not ingested."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "maruta", Subsystem: "forward", Name: "errors_total",
			Help: "Refused requests and closed connections, by reason.",
		}, []string{"reason"}),
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maruta", Subsystem: "forward", Name: "requests_total",
		Help: "Requests received, by mode (heartbeat: a nil between requests).",
	}, []string{"mode"})
	for i := range m.requests {
		m.requests[i] = requests.WithLabelValues(Mode(i).String())
	}
	m.heartbeatsUDP = counter("udp_heartbeats_total", "UDP heartbeats answered.")
	invalid := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "maruta", Subsystem: "forward", Name: "invalid_events_total",
		Help: "Events skipped from otherwise valid requests, by reason.",
	}, []string{"reason"})
	for i := range m.invalid {
		m.invalid[i] = invalid.WithLabelValues(invalidNames[i])
	}
	inflatedBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "maruta", Subsystem: "forward", Name: "inflated_bytes",
		Help: "Bytes decompressed requests hold (inflated data, their events, zstd history), at most max_decompressed_size together (a request alone may go up to it).",
	}, inflated)
	for _, reason := range []string{
		reasonInvalidMsgpack, reasonTooLarge, reasonTooDeep, reasonDecompressedSize, reasonDecompressBudget,
		reasonBadRequest, reasonBadCompression, reasonBadEntries, reasonConsumeFailed,
		reasonIdleTimeout, reasonMaxConnections, reasonAuthFailed, reasonTLSHandshake,
		reasonReadError, reasonWriteError,
	} {
		m.errors.WithLabelValues(reason) // export zeros, so rates work from the start
	}
	for _, c := range []prometheus.Collector{m.connsOpen, m.connsTotal, requests, m.events, m.bytes, m.acks, m.ackLatency, m.duplicates, m.heartbeatsUDP, invalid, m.errors, inflatedBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
