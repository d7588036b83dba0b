package dedup

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Store's Prometheus metrics.
type metrics struct {
	reg                             prometheus.Registerer
	collectors                      []prometheus.Collector
	recovered, kept, recordFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Store) (*metrics, error) {
	m := &metrics{
		reg: reg,
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_dedup_recovered_ids_total",
			Help: "Chunk ids taken into the dedup index from the marks of complete batches found in chunks and the dedup record (at start, or in chunks requeued later)."}),
		kept: prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_dedup_record_marks_total",
			Help: "Marks written to the dedup record from chunks that left their buffer (delivered or dead-lettered)."}),
		recordFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_dedup_record_failures_total",
			Help: "Failed writes, syncs or compactions of the dedup record, and chunks whose marks could not be read back: a resend of their requests after a restart may be stored again."}),
	}
	ids := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "maruta_dedup_ids",
		Help: "Chunk ids in the dedup index of the Forward sources."}, func() float64 { return float64(s.Len()) })
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.recovered, m.kept, m.recordFailures, ids} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}
