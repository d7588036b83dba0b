package sinks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/sinks/encode"
)

// stdoutConsumer prints events as JSON lines: the record's keys, then
// "time" (RFC 3339, milliseconds, UTC) and "tag" (each replacing a record
// key of the same name). It writes synchronously, one Write per batch,
// unbuffered.
type stdoutConsumer struct {
	mu      sync.Mutex
	w       io.Writer
	enc     *encode.JSONL
	buf     []byte
	metrics *sinkMetrics
	log     *slog.Logger
}

var _ event.Consumer = (*stdoutConsumer)(nil)

// NewStdout returns a consumer that writes each batch to w as JSON lines
// before Consume returns. Safe for concurrent use (batches do not
// interleave).
func NewStdout(w io.Writer, opts Options) event.Consumer {
	name := "stdout"
	if opts.Output != nil {
		name = opts.Output.Name
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &stdoutConsumer{
		w:       w,
		enc:     encode.NewJSONL("time", "tag", "", false),
		metrics: newSinkMetrics(opts.Registerer, name),
		log:     log.With("component", "sink", "output", name),
	}
}

// Consume implements event.Consumer.
func (s *stdoutConsumer) Consume(ctx context.Context, b *event.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	var st encode.Stats
	for _, ev := range b.Events {
		var inv int
		var ok bool
		buf, inv, ok = s.enc.AppendLine(buf, b.Tag, ev.Time, ev.Record)
		st.InvalidUTF8 += int64(inv)
		st.InputBytes += int64(len(ev.Record))
		if ok {
			st.Rows++
		} else {
			st.Invalid++
		}
	}
	s.buf = buf
	if _, err := s.w.Write(buf); err != nil {
		s.metrics.errors.WithLabelValues(kindIO).Inc()
		return fmt.Errorf("write stdout: %w", err)
	}
	if len(s.buf) > 1<<20 {
		s.buf = nil // do not keep a huge batch's buffer
	}
	s.metrics.bytes.Add(float64(len(buf)))
	s.metrics.addStats(st)
	if st.Invalid > 0 {
		s.log.Error("events dropped: record is not a msgpack map", "tag", b.Tag, "reason", "invalid_record", "events", st.Invalid)
	}
	return nil
}

// nullConsumer discards events and counts them.
type nullConsumer struct {
	metrics *sinkMetrics
}

var _ event.Consumer = (*nullConsumer)(nil)

// NewNull returns a consumer that discards every event, counted in
// maruta_sink_dropped_events_total{reason="null_output"}. It logs once,
// when made, that the output discards events.
func NewNull(opts Options) event.Consumer {
	name := "null"
	if opts.Output != nil {
		name = opts.Output.Name
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log.With("component", "sink", "output", name).Info("null output: matching events are discarded (counted)", "reason", "null_output")
	m := newSinkMetrics(opts.Registerer, name)
	m.dropped.WithLabelValues("null_output")
	return &nullConsumer{metrics: m}
}

// Consume implements event.Consumer.
func (n *nullConsumer) Consume(_ context.Context, b *event.Batch) error {
	n.metrics.dropped.WithLabelValues("null_output").Add(float64(len(b.Events)))
	return nil
}
