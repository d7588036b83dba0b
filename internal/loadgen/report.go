package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes r as a short human-readable report.
func (r *Result) WriteText(w io.Writer) {
	var how []string
	if r.Mode == "packed" {
		how = append(how, fmt.Sprintf("PackedForward of %d records", r.Batch))
		if r.Gzip {
			how = append(how, "gzip")
		}
		if r.Ack {
			how = append(how, fmt.Sprintf("acks (%d in flight)", r.Inflight))
		} else {
			how = append(how, "no acks")
		}
	} else {
		how = append(how, "Docker fluentd driver")
		if r.Async {
			how = append(how, "async")
		} else {
			how = append(how, "sync")
		}
		if r.Ack {
			how = append(how, "request-ack")
		}
		if r.SubSecond {
			how = append(how, "sub-second")
		}
		if r.Seq {
			how = append(how, "seq lines")
		}
		if r.Lines > 0 {
			how = append(how, fmt.Sprintf("%d containers of %d lines each", r.Containers, r.Lines))
		}
	}
	if r.Rate > 0 {
		how = append(how, fmt.Sprintf("%s records/s each", human(r.Rate)))
	}
	fmt.Fprintf(w, "maruta bench: %d senders → %s: %s; records of %.0f bytes\n",
		r.Senders, r.Addr, strings.Join(how, ", "), r.RecordBytes)
	fmt.Fprintf(w, "run %.1fs, measured over the last %.1fs\n", r.DurationSeconds, r.MeasuredSeconds)
	if r.Printed > 0 {
		fmt.Fprintf(w, "  printed  %12d lines  lost by the loggers %d (%.2f%%)\n", r.Printed, r.Lost, 100*float64(r.Lost)/float64(r.Printed))
	}
	fmt.Fprintf(w, "  sent     %12d records  %10.0f records/s  %7.1f MB/s\n", r.Sent, r.SentPerSec, r.SentMBPerS)
	if r.Ack {
		fmt.Fprintf(w, "  acked    %12d records  %10.0f records/s\n", r.Acked, r.AckedPerSec)
	}
	if r.Latency.Count > 0 {
		l := r.Latency
		fmt.Fprintf(w, "  latency  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  (%d requests)\n",
			l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
	}
	if r.Errors > 0 || r.Resent > 0 {
		fmt.Fprintf(w, "  errors   %d  (records sent again: %d)\n", r.Errors, r.Resent)
	}
	if m := r.Maruta; m != nil {
		drain := "drained"
		if !m.Drained {
			drain = "NOT drained"
		}
		fmt.Fprintf(w, "  maruta   accepted %d  delivered %d  (%s, %.1fs after the run)", m.Accepted, m.Delivered, drain, m.DrainSeconds)
		if m.Rejected > 0 || m.Dropped > 0 {
			fmt.Fprintf(w, "  rejected %d  dropped %d", m.Rejected, m.Dropped)
		}
		fmt.Fprintln(w)
		if r.Printed > 0 {
			fmt.Fprintf(w, "           stored %d of %d lines printed: %d lost (%.2f%%)\n", m.Delivered, r.Printed,
				r.Printed-m.Delivered, 100*float64(r.Printed-m.Delivered)/float64(r.Printed))
		}
		if a, f := m.AckLatency, m.Fsync; a.Count > 0 || f.Count > 0 {
			fmt.Fprintf(w, "           ack latency p50 %.2f ms  p99 %.2f ms (%.0f acks);  fsync p50 %.2f ms  p99 %.2f ms (%.0f rounds)\n",
				a.P50, a.P99, a.Count, f.P50, f.P99, f.Count)
		}
		fmt.Fprintf(w, "           cpu %.2f s = %.3f CPU-s per million records;  rss max %.0f MB, end %.0f MB;  buffer max %.1f MB, end %.1f MB\n",
			m.CPUSeconds, m.CPUPerMillion, m.RSSMaxMB, m.RSSEndMB, m.BufferMaxMB, m.BufferEndMB)
	}
	fmt.Fprintf(w, "  load generator cpu %.2f s\n", r.LoadgenCPU)
}
