package buffer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// dockerRecord is a record shaped like the Docker fluentd log driver's
// (about 330 bytes).
func dockerRecord(i int) []byte {
	b := msgpack.AppendMapHeader(nil, 4)
	b = msgpack.AppendString(b, "container_id")
	b = msgpack.AppendString(b, strings.Repeat("3f2a9c1e", 8))
	b = msgpack.AppendString(b, "container_name")
	b = msgpack.AppendString(b, "/web-frontend-1")
	b = msgpack.AppendString(b, "source")
	b = msgpack.AppendString(b, "stdout")
	b = msgpack.AppendString(b, "log")
	b = msgpack.AppendString(b, fmt.Sprintf(`{"level":"info","ts":"2026-11-22T13:05:00.123Z","msg":"GET /api/v1/items/%d 200","latency_ms":12,"bytes":5123,"ua":"Mozilla/5.0 (X11; Linux x86_64)"}`, i))
	return b
}

// nopSink confirms chunks without reading them, so benchmarks measure the
// append path.
type nopSink struct{}

func (nopSink) Write(context.Context, delivery.Chunk) error { return nil }
func (nopSink) Close() error                                { return nil }

// BenchmarkAppend measures Consume throughput with N concurrent appenders,
// each appending batches of `batch` Docker-shaped events, for each fsync
// mode. One op is one Consume call; events/s is the aggregate rate.
func BenchmarkAppend(b *testing.B) {
	for _, batchSize := range []int{1, 16} {
		for _, mode := range []config.FsyncMode{"always", "interval", "off"} {
			for _, n := range []int{1, 16, 64, 128} {
				b.Run(fmt.Sprintf("batch=%d/fsync=%s/appenders=%d", batchSize, mode, n), func(b *testing.B) {
					benchAppend(b, mode, n, batchSize, false, false)
				})
			}
		}
	}
}

// BenchmarkAppendNoWait is the append of a Forward request without a chunk
// option (Docker's default): Consume with a Commit, which it fills instead
// of waiting for the group commit; the background round runner syncs. One
// event per batch is Docker's line per request when the reader is not
// behind; 16 when it is.
func BenchmarkAppendNoWait(b *testing.B) {
	for _, batchSize := range []int{1, 16} {
		for _, n := range []int{1, 20} {
			b.Run(fmt.Sprintf("batch=%d/appenders=%d", batchSize, n), func(b *testing.B) {
				benchAppend(b, "always", n, batchSize, true, false)
			})
		}
	}
}

// BenchmarkAppendMarked is the append of acked Forward requests with dedup
// on: every frame carries a dedup mark with the batch's chunk ids (one per
// request: 24 bytes, what fluent-logger-golang sends), beside the same
// append without one. fsync off shows the CPU the mark costs; always, what
// it costs per round.
func BenchmarkAppendMarked(b *testing.B) {
	for _, mode := range []config.FsyncMode{"off", "always"} {
		for _, marked := range []bool{false, true} {
			b.Run(fmt.Sprintf("fsync=%s/marked=%v", mode, marked), func(b *testing.B) {
				benchAppend(b, mode, 16, 1, false, marked)
			})
		}
	}
}

func benchAppend(b *testing.B, mode config.FsyncMode, appenders, batchSize int, noWait, marked bool) {
	if os.Getenv("MARUTA_BENCH_NOPREALLOC") != "" {
		preallocate = false
		defer func() { preallocate = true }()
	}
	cfg := testConfig(filepath.Join(b.TempDir(), "buf"))
	cfg.Fsync = mode
	cfg.FsyncInterval = config.Duration(time.Second)
	cfg.ChunkLimitSize = 8 << 20
	cfg.TotalLimitSize = 4 << 30
	cfg.FlushInterval = config.Duration(5 * time.Second)
	buf, err := New(Options{Name: "bench", Config: cfg, Sink: nopSink{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { buf.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	batches := make([]*event.Batch, appenders)
	bytes := 0
	for g := range batches {
		bt := &event.Batch{Tag: "docker.web"}
		if marked {
			bt.Dedup = &dedup.Mark{Batch: uint64(g), At: time.Now().UnixMilli()}
			bt.Delivery, bt.Deliveries = 1, 1
			for i := 0; i < batchSize; i++ {
				bt.Dedup.IDs = append(bt.Dedup.IDs, msgpack.AppendString(nil, fmt.Sprintf("Zm9vYmFyYmF6cXV4%08d", g*batchSize+i)))
			}
		}
		for i := 0; i < batchSize; i++ {
			r := dockerRecord(g*batchSize + i)
			bytes += len(r)
			bt.Events = append(bt.Events, event.Event{Time: event.Now(), Record: r})
		}
		batches[g] = bt
	}
	b.SetBytes(int64(bytes / appenders))
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	b.ResetTimer()
	for g := 0; g < appenders; g++ {
		wg.Go(func() {
			var commit event.Commit
			if noWait {
				batches[g].Commit = &commit
			}
			for next.Add(1) <= int64(b.N) {
				if err := buf.Consume(ctx, batches[g]); err != nil {
					b.Error(err)
					return
				}
				if noWait && next.Load() < int64(b.N) {
					commit.Reset()
				}
			}
			if err := commit.Wait(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*batchSize)/el, "events/s")
	if r, sum := histCount(buf.m.fsync); r > 0 && mode == "always" {
		b.ReportMetric(float64(b.N)/r, "appends/round")
		b.ReportMetric(sum/r*1e6, "µs/round-sync")
	}
}

// BenchmarkScan measures reading a sealed chunk back (the flush path).
func BenchmarkScan(b *testing.B) {
	cfg := testConfig(filepath.Join(b.TempDir(), "buf"))
	cfg.Fsync = "off"
	buf, err := New(Options{Name: "bench", Config: cfg, Sink: nopSink{}})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	bt := &event.Batch{Tag: "docker.web"}
	size := 0
	for i := 0; i < 100; i++ {
		r := dockerRecord(i)
		size += len(r)
		bt.Events = append(bt.Events, event.Event{Time: event.Now(), Record: r})
	}
	for i := 0; i < 20; i++ {
		if err := buf.Consume(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
	var c *chunk
	for _, o := range buf.open {
		c = o
	}
	buf.retire(c)
	b.SetBytes(int64(size * 20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if err := c.Scan(func(string, event.Time, []byte) error { n++; return nil }); err != nil || n != 2000 {
			b.Fatal(n, err)
		}
	}
}

func histCount(h interface{ Write(*dto.Metric) error }) (n, sum float64) {
	var d dto.Metric
	if err := h.Write(&d); err != nil || d.Histogram == nil {
		return 0, 0
	}
	return float64(d.Histogram.GetSampleCount()), d.Histogram.GetSampleSum()
}

// BenchmarkRawFdatasync is the disk's floor for fsync: always: one 300-byte
// write plus fdatasync, appending (the file grows) or overwriting zeros
// written earlier (what the zero-filled preallocation gives).
func BenchmarkRawFdatasync(b *testing.B) {
	for _, mode := range []string{"append", "overwrite"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "f"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if mode == "overwrite" {
				if err := writeZeros(f, 0, int64(b.N+1)*300); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, 300)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.WriteAt(buf, int64(i)*300); err != nil {
					b.Fatal(err)
				}
				if err := datasync(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
