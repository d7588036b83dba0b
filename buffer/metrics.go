package buffer

import (
	"errors"
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a buffer's Prometheus metrics, all with the label output
// (added by the registerer New wraps).
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	appends, appendEvents, appendBytes         prometheus.Counter
	rejected                                   *prometheus.CounterVec
	dropEvents, dropBytes, dropChunks          *prometheus.CounterVec
	fsync                                      prometheus.Histogram
	flush                                      *prometheus.HistogramVec
	retries                                    prometheus.Counter
	deadChunks, deadEvents                     *prometheus.CounterVec
	delivered, deliveredEvents, deliveredBytes prometheus.Counter
	cutBytes, quarantined                      prometheus.Counter
	commitFailures                             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b *Buffer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_buffer_" + name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maruta_buffer_" + name, Help: help}, labels)
	}
	m := &metrics{
		reg:          reg,
		appends:      counter("appends_total", "Consume calls that returned nil (batches accepted)."),
		appendEvents: counter("appended_events_total", "Events accepted."),
		appendBytes:  counter("appended_bytes_total", "Bytes of frames written for accepted batches."),
		rejected: counterVec("rejected_events_total",
			"Events of batches not accepted (the client keeps and resends them), by reason: buffer_full (overflow_action throw), timeout (blocked until the caller gave up), closed, too_large.", "reason"),
		dropEvents: counterVec("dropped_events_total", "Events deleted without delivery, by reason.", "reason"),
		dropBytes:  counterVec("dropped_bytes_total", "Chunk bytes deleted without delivery, by reason.", "reason"),
		dropChunks: counterVec("dropped_chunks_total", "Chunks deleted without delivery, by reason.", "reason"),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "maruta_buffer_fsync_duration_seconds",
			Help: "Duration of one group-commit round (fdatasync of every chunk written since the last round).",
			// Fine enough to compare medians with maruta_forward_ack_latency_seconds (same buckets).
			Buckets: prometheus.ExponentialBuckets(0.000025, 1.5, 28),
		}),
		flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "maruta_buffer_flush_duration_seconds",
			Help:    "Duration of Sink.Write for one chunk, by result: success, retry, permanent, retries_exhausted, corrupt, cancelled.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 12),
		}, []string{"result"}),
		retries:         counter("retries_total", "Failed deliveries that will be retried."),
		deadChunks:      counterVec("dead_lettered_chunks_total", "Chunks moved to the dead-letter folder, by reason: permanent, retries_exhausted, corrupt.", "reason"),
		deadEvents:      counterVec("dead_lettered_events_total", "Events in chunks moved to the dead-letter folder, by reason.", "reason"),
		delivered:       counter("delivered_chunks_total", "Chunks the sink confirmed."),
		deliveredEvents: counter("delivered_events_total", "Events in chunks the sink confirmed."),
		deliveredBytes:  counter("delivered_bytes_total", "Bytes of chunk files the sink confirmed."),
		cutBytes:        counter("recovery_cut_bytes_total", "Bytes cut from torn or corrupt chunk tails by recovery."),
		quarantined:     counter("quarantined_chunks_total", "Chunk files recovery could not read, moved to quarantine/."),
		commitFailures: counter("commit_failures_total",
			"Group-commit rounds (fsync: always) whose write or fdatasync failed: their appends were not acknowledged; appends nobody waited for (Forward requests without a chunk option) may be lost."),
	}
	m.collectors = []prometheus.Collector{
		m.appends, m.appendEvents, m.appendBytes, m.rejected, m.dropEvents, m.dropBytes, m.dropChunks,
		m.fsync, m.flush, m.retries, m.deadChunks, m.deadEvents, m.delivered, m.deliveredEvents,
		m.deliveredBytes, m.cutBytes, m.quarantined, m.commitFailures, stateCollector{b},
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, r := range m.collectors[:i] {
				reg.Unregister(r)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("register metrics: a buffer with this output name is already registered")
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

var (
	descBytes = prometheus.NewDesc("maruta_buffer_bytes",
		"Bytes of chunk files on disk, by state: open (taking appends), queued (sealed, waiting for or in delivery).",
		[]string{"state"}, nil)
	descChunks = prometheus.NewDesc("maruta_buffer_chunks",
		"Chunk files, by state: open, queued, in_flight (part of queued), retrying (part of queued).",
		[]string{"state"}, nil)
	descOldest = prometheus.NewDesc("maruta_buffer_oldest_event_age_seconds",
		"Age (now minus event time) of the oldest event not yet delivered; 0 when empty.", nil, nil)
	descLimit = prometheus.NewDesc("maruta_buffer_total_limit_bytes",
		"total_limit_size.", nil, nil)
	descBlocked = prometheus.NewDesc("maruta_buffer_blocked_appends",
		"Consume calls waiting for room (overflow_action block).", nil, nil)
)

// stateCollector reports gauges computed from Status at scrape time.
type stateCollector struct{ b *Buffer }

func (s stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBytes
	ch <- descChunks
	ch <- descOldest
	ch <- descLimit
	ch <- descBlocked
}

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.b.Status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(descBytes, float64(st.OpenBytes), "open")
	g(descBytes, float64(st.QueuedBytes), "queued")
	g(descChunks, float64(st.OpenChunks), "open")
	g(descChunks, float64(st.QueuedChunks), "queued")
	g(descChunks, float64(st.InFlightChunks), "in_flight")
	g(descChunks, float64(st.RetryingChunks), "retrying")
	age := 0.0
	if !st.OldestEvent.IsZero() {
		age = math.Max(0, s.b.now().Sub(st.OldestEvent).Seconds())
	}
	g(descOldest, age)
	g(descLimit, float64(st.TotalLimitBytes))
	g(descBlocked, float64(st.BlockedAppends))
}
