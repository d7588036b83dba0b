package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/loadgen"
)

// TestBench runs `maruta bench` against a real maruta process: packed
// senders with acks and Docker-driver senders (sync, request-ack), and
// checks that what the load generator counts matches what maruta accepted
// and delivered (read from its /metrics), and that latencies and maruta's
// CPU and memory are reported.
func TestBench(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "bench.yaml", fmt.Sprintf(`
node: bench
data_dir: %[1]s/data
http: {listen: 127.0.0.1:0}
sources:
  - type: forward
    listen: 127.0.0.1:0
outputs:
  - type: file
    name: out
    format: jsonl
    path: %[1]s/out/
    buffer:
      flush_interval: 200ms
      fsync: always
`, dir))
	p := startMaruta(t, dir, nil, "-c", cfg)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"packed", []string{"-mode", "packed", "-senders", "4", "-batch", "200", "-inflight", "2"}},
		{"docker", []string{"-mode", "docker", "-senders", "8", "-subsecond", "-ack"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBench(t, append([]string{"bench", "-addr", p.Forward, "-metrics", p.HTTP, "-duration", "1500ms",
				"-warmup", "300ms", "-drain", "20s", "-json", "-quiet"}, tc.args...))
			if r.Sent == 0 || r.Acked != r.Sent || r.Errors != 0 {
				t.Fatalf("sent %d acked %d errors %d", r.Sent, r.Acked, r.Errors)
			}
			if r.AckedPerSec <= 0 || r.RecordBytes < 300 || r.RecordBytes > 360 {
				t.Errorf("acked/s %.0f, record bytes %.0f", r.AckedPerSec, r.RecordBytes)
			}
			l := r.Latency
			if l.Count == 0 || !(l.P50 > 0 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
				t.Errorf("latency %+v", l)
			}
			m := r.Maruta
			if m == nil {
				t.Fatal("no maruta section")
			}
			// Every acked record was accepted once (no resends) and delivered.
			if m.Accepted != r.Acked || m.Delivered != m.Accepted || !m.Drained {
				t.Errorf("acked %d, maruta accepted %d delivered %d drained %v", r.Acked, m.Accepted, m.Delivered, m.Drained)
			}
			if m.CPUSeconds <= 0 || m.CPUPerMillion <= 0 || m.RSSMaxMB <= 0 {
				t.Errorf("cpu %.2f s (%.2f per million), rss %.0f MB", m.CPUSeconds, m.CPUPerMillion, m.RSSMaxMB)
			}
			if len(r.Timeline) == 0 {
				t.Error("no timeline")
			}
			// maruta's own ack latency and fsync histograms over the run.
			if a, f := m.AckLatency, m.Fsync; a.Count < float64(r.Requests)*0.9 || a.P50 <= 0 || a.P99 < a.P50 || f.Count <= 0 || f.P50 <= 0 {
				t.Errorf("ack latency %+v, fsync %+v, %d requests", a, f, r.Requests)
			}
		})
	}

	// Containers that print their lines and exit, Docker's default (no
	// ack): every line printed is counted and stored, none lost.
	t.Run("docker_lines", func(t *testing.T) {
		r := runBench(t, []string{"bench", "-addr", p.Forward, "-metrics", p.HTTP, "-drain", "20s", "-json", "-quiet",
			"-mode", "docker", "-senders", "3", "-containers", "6", "-lines", "700", "-seq"})
		if r.Ack || r.Printed != 6*700 || r.Lost != 0 || r.Sent != r.Printed || r.Errors != 0 || !r.Seq || r.Containers != 6 {
			t.Fatalf("ack %v printed %d lost %d sent %d errors %d", r.Ack, r.Printed, r.Lost, r.Sent, r.Errors)
		}
		if r.RecordBytes < 100 || r.RecordBytes > 140 {
			t.Errorf("record bytes %.0f for seq lines", r.RecordBytes)
		}
		m := r.Maruta
		if m == nil || m.Delivered != r.Printed || !m.Drained || m.Fsync.Count <= 0 || m.CPUPerMillion <= 0 {
			t.Fatalf("maruta %+v", m)
		}
		if m.AckLatency.Count != 0 {
			t.Errorf("acks without -ack: %+v", m.AckLatency)
		}
	})

	// The text report says the same.
	var out, errb bytes.Buffer
	if code := runMain([]string{"bench", "-addr", p.Forward, "-metrics", p.HTTP, "-duration", "500ms", "-warmup", "0s",
		"-senders", "2", "-batch", "10", "-quiet"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"acked", "p99", "delivered", "CPU-s per million"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// runBench runs `maruta bench` with args (which include -json) and returns
// its result.
func runBench(t *testing.T, args []string) loadgen.Result {
	t.Helper()
	var out, errb bytes.Buffer
	if code := runMain(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r loadgen.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	return r
}

func TestBenchUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain([]string{"bench", "-h"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"-addr", "-mode", "-senders", "-batch", "-gzip", "-ack", "-inflight", "-async",
		"-subsecond", "-log-size", "-rate", "-duration", "-warmup", "-metrics", "-pid", "-drain", "-json",
		"-lines", "-seq", "-containers", "-pipe-bytes", "-exit-grace"} {
		if !strings.Contains(out.String(), "  "+flag+" ") && !strings.Contains(out.String(), "  "+flag+"\n") {
			t.Errorf("usage lacks %s", flag)
		}
	}
	if code := runMain([]string{"bench", "-mode", "nope", "-duration", "1s"}, &out, &errb); code != 1 {
		t.Errorf("bad mode: exit %d", code)
	}
}
