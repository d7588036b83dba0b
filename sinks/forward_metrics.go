package sinks

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds of a forward output (label kind of
// maruta_forward_output_errors_total).
const (
	fwdKindConnect    = "connect"     // DNS, TCP or unix socket connect failed
	fwdKindTLS        = "tls"         // TLS handshake failed (certificate, server name)
	fwdKindAuth       = "auth"        // shared key, username or password refused
	fwdKindHandshake  = "handshake"   // HELO/PING/PONG failed otherwise (no HELO, closed)
	fwdKindSend       = "send"        // writing a request failed or timed out
	fwdKindAckTimeout = "ack_timeout" // no ack within ack_response_timeout
	fwdKindAck        = "ack"         // connection closed or reset before the ack, wrong ack
	fwdKindHeartbeat  = "heartbeat"   // a heartbeat or recovery probe failed
)

var fwdKinds = []string{fwdKindConnect, fwdKindTLS, fwdKindAuth, fwdKindHandshake, fwdKindSend, fwdKindAckTimeout, fwdKindAck, fwdKindHeartbeat}

// fwdMetrics are a forward output's per-server metrics, labelled
// output=<name> and server=<server name>.
type fwdMetrics struct {
	up          *prometheus.GaugeVec
	requests    *prometheus.CounterVec
	events      *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	acks        *prometheus.CounterVec
	ackLatency  *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	failovers   *prometheus.CounterVec
	errors      *prometheus.CounterVec // server, kind
	unavailable prometheus.Counter
	held        prometheus.Counter
}

// fwdServerMetrics are one server's series.
type fwdServerMetrics struct {
	up         prometheus.Gauge
	requests   prometheus.Counter
	events     prometheus.Counter
	bytes      prometheus.Counter
	acks       prometheus.Counter
	ackLatency prometheus.Observer
	retries    prometheus.Counter
	failovers  prometheus.Counter
	errors     map[string]prometheus.Counter
}

func newFwdMetrics(reg prometheus.Registerer, output string) *fwdMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r := prometheus.WrapRegistererWith(prometheus.Labels{"output": output}, reg)
	const ns, sub = "maruta", "forward_output"
	counter := func(name, help string) *prometheus.CounterVec {
		return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{"server"}))
	}
	return &fwdMetrics{
		up: register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "server_up",
			Help: "1 when the server is considered healthy (chunks go to it), 0 while it is down.",
		}, []string{"server"})),
		requests: counter("requests_total", "PackedForward requests sent, retries included."),
		events:   counter("events_total", "Events in requests the server acked (or, without require_ack_response, wrote)."),
		bytes:    counter("sent_bytes_total", "Bytes of requests the server acked (as sent, after compression)."),
		acks:     counter("acks_total", "Acks received."),
		ackLatency: register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "ack_latency_seconds",
			Help:    "Time from starting to send a request to receiving its ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"server"})),
		retries:   counter("retries_total", "Requests that resend a chunk part already sent once by this process (after a failure or a lost ack), same chunk id."),
		failovers: counter("failovers_total", "Requests whose home server (first choice for their chunk) was down or failed, delivered to another server; labelled with the home server."),
		errors: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failures talking to a server, by kind (connect, tls, auth, handshake, send, ack_timeout, ack, heartbeat).",
		}, []string{"server", "kind"})),
		unavailable: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "unavailable_total",
			Help: "Chunk deliveries that failed because no server was healthy (the chunk stays buffered and is retried).",
		})),
		held: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "held_total",
			Help: "Chunk deliveries deferred because a part is in doubt on a server (written whole, ack timed out or connection lost) and waits for that server (ack_timeout_hold, lost_ack_hold) instead of failing over.",
		})),
	}
}

func (m *fwdMetrics) server(name string) *fwdServerMetrics {
	sm := &fwdServerMetrics{
		up:         m.up.WithLabelValues(name),
		requests:   m.requests.WithLabelValues(name),
		events:     m.events.WithLabelValues(name),
		bytes:      m.bytes.WithLabelValues(name),
		acks:       m.acks.WithLabelValues(name),
		ackLatency: m.ackLatency.WithLabelValues(name),
		retries:    m.retries.WithLabelValues(name),
		failovers:  m.failovers.WithLabelValues(name),
		errors:     map[string]prometheus.Counter{},
	}
	for _, k := range fwdKinds {
		sm.errors[k] = m.errors.WithLabelValues(name, k)
	}
	return sm
}
