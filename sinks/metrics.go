package sinks

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/sinks/encode"
)

// sinkMetrics are one output's metrics, all labelled output=<name>. Several
// outputs register on one registry; registering the same output twice
// reuses the first collectors.
type sinkMetrics struct {
	objects      prometheus.Counter
	bytes        prometheus.Counter
	rows         prometheus.Counter
	inputBytes   prometheus.Counter
	duration     prometheus.Histogram
	upload       prometheus.Histogram
	errors       *prometheus.CounterVec // kind
	conflicts    prometheus.Counter
	columnsAdded prometheus.Counter
	replans      prometheus.Counter
	overflow     *prometheus.CounterVec // reason
	mismatches   *prometheus.CounterVec // column, outcome
	invalidUTF8  prometheus.Counter
	dropped      *prometheus.CounterVec // reason
	partRetries  prometheus.Counter
}

// Error kinds (label values of maruta_sink_errors_total).
const (
	kindThrottle  = "throttle"  // SlowDown, 429, 503: retried
	kindServer    = "server"    // other 5xx: retried
	kindNetwork   = "network"   // connection errors, timeouts: retried
	kindPermanent = "permanent" // access denied, no such bucket, bad credentials: dead letter
	kindConflict  = "conflict"  // 412 on an object that holds another chunk: dead letter
	kindEncode    = "encode"    // reading the chunk or encoding failed
	kindIO        = "io"        // local file system
	kindOther     = "other"
)

func newSinkMetrics(reg prometheus.Registerer, output string) *sinkMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r := prometheus.WrapRegistererWith(prometheus.Labels{"output": output}, reg)
	m := &sinkMetrics{
		objects: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_objects_total", Help: "Objects (files) delivered.",
		})),
		bytes: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_bytes_total", Help: "Bytes of delivered objects.",
		})),
		rows: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_rows_total", Help: "Events delivered (rows or lines).",
		})),
		inputBytes: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_input_bytes_total", Help: "Raw msgpack bytes of the delivered events; with maruta_sink_bytes_total it gives the compression ratio.",
		})),
		duration: register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "maruta_sink_write_duration_seconds", Help: "Time to encode and deliver one chunk, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		})),
		upload: register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "maruta_sink_upload_duration_seconds", Help: "Time to upload one object to S3 (or to write, fsync and rename one file), successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		})),
		errors: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maruta_sink_errors_total", Help: "Failed chunk deliveries by kind (throttle, server, network, permanent, conflict, encode, io, other).",
		}, []string{"kind"})),
		conflicts: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_conflicts_total", Help: "Conditional puts refused (412) because the object already held this chunk (chunk id and record digest in its metadata): counted as delivered.",
		})),
		columnsAdded: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_schema_columns_added_total", Help: "Columns added to the table schema (auto mode).",
		})),
		replans: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_parquet_replans_total", Help: "Chunks encoded again in two passes because they had a key outside the Parquet file plan (the columns of earlier files).",
		})),
		overflow: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maruta_sink_overflow_values_total", Help: "Values kept as text in the overflow column, by reason (type_conflict, undeclared, invalid_name, column_limit, duplicate).",
		}, []string{"reason"})),
		mismatches: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maruta_sink_type_mismatches_total", Help: "Values of another type than their Parquet column's, by column and outcome: coerced (kept in the column without loss: a number or boolean in a string column as its JSON text, an integer in a double column) or overflow (kept as text in the overflow column).",
		}, []string{"column", "outcome"})),
		invalidUTF8: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_invalid_utf8_total", Help: "Invalid UTF-8 sequences replaced by U+FFFD.",
		})),
		partRetries: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_s3_part_retries_total", Help: "Parts of S3 multipart uploads tried again by the AWS SDK (a part is retried on its own, up to 3 tries; every other request is tried once and retried by the buffer).",
		})),
		dropped: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maruta_sink_dropped_events_total", Help: "Events not written, by reason (invalid_record: not a msgpack map; null_output: a null output).",
		}, []string{"reason"})),
	}
	return m
}

// register registers c, or returns the collector already registered under
// the same description.
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// delivered records a delivered object and what encoding found.
func (m *sinkMetrics) delivered(size int64, st encode.Stats) {
	m.objects.Inc()
	m.bytes.Add(float64(size))
	m.addStats(st)
}

// addStats adds what encoding found.
func (m *sinkMetrics) addStats(st encode.Stats) {
	m.rows.Add(float64(st.Rows))
	m.inputBytes.Add(float64(st.InputBytes))
	m.columnsAdded.Add(float64(st.ColsAdded))
	m.invalidUTF8.Add(float64(st.InvalidUTF8))
	for r, n := range st.Overflow {
		m.overflow.WithLabelValues(r).Add(float64(n))
	}
	for mm, n := range st.Mismatches {
		m.mismatches.WithLabelValues(mm.Column, mm.Outcome).Add(float64(n))
	}
	if st.Invalid > 0 {
		m.dropped.WithLabelValues("invalid_record").Add(float64(st.Invalid))
	}
}
