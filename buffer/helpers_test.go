package buffer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/marutalog/maruta/buffer/buffertest"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
)

// testConfig is a buffer config with the defaults of the config package,
// short timers and small sizes.
func testConfig(dir string) config.Buffer {
	t := true
	return config.Buffer{
		Path:             dir,
		ChunkLimitSize:   1 << 20,
		TotalLimitSize:   64 << 20,
		FlushInterval:    config.Duration(time.Hour),
		Timekey:          0,
		TimekeyWait:      0,
		Fsync:            "always",
		FsyncInterval:    config.Duration(50 * time.Millisecond),
		OverflowAction:   "block",
		FlushThreadCount: 2,
		MaxOpenChunks:    64,
		RetryWait:        config.Duration(10 * time.Millisecond),
		RetryMaxInterval: config.Duration(50 * time.Millisecond),
		RetryTimeout:     config.Duration(time.Hour),
		RetryRandomize:   &t,
	}
}

type harness struct {
	t      *testing.T
	b      *Buffer
	sink   *buffertest.RecordingSink
	dir    string
	dead   string
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, cfg config.Buffer, sink *buffertest.RecordingSink, mod func(*Options)) *harness {
	t.Helper()
	if sink == nil {
		sink = &buffertest.RecordingSink{}
	}
	h := &harness{t: t, sink: sink, dir: cfg.Path, dead: filepath.Join(filepath.Dir(cfg.Path), "dead"), reg: prometheus.NewRegistry()}
	opts := Options{
		Name: "out", Config: cfg, Sink: sink, Node: "node1", DeadLetterDir: h.dead,
		Registerer: h.reg, RescanInterval: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.b = b
	return h
}

// start runs the buffer until the test ends (or stop).
func (h *harness) start() *harness {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.b.Run(ctx) }()
	h.t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		h.b.Close()
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) drain() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.b.Drain(ctx); err != nil {
		h.t.Fatalf("Drain: %v", err)
	}
}

// consume appends events with ids prefix-0..n-1 at time at.
func (h *harness) consume(tag, prefix string, n int, at time.Time) {
	h.t.Helper()
	if err := h.b.Consume(context.Background(), batch(tag, prefix, n, at)); err != nil {
		h.t.Fatalf("Consume: %v", err)
	}
}

func batch(tag, prefix string, n int, at time.Time) *event.Batch {
	b := &event.Batch{Tag: tag}
	for i := 0; i < n; i++ {
		b.Events = append(b.Events, event.Event{
			Time:   event.Time(at.UnixNano()) + event.Time(i),
			Record: buffertest.Record(fmt.Sprintf("%s%d", prefix, i), strings.Repeat("x", 100)),
		})
	}
	return b
}

// files lists the file names in dir (not folders), sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if !e.IsDir() && e.Name() != "LOCK" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func sortedIDs(ds []buffertest.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	sort.Strings(out)
	return out
}

func wantIDs(prefix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	sort.Strings(out)
	return out
}

var _ = sync.Mutex{}

// metricValue reads a counter or gauge (the sum over its children for a
// vector).
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Counter != nil:
			sum += d.Counter.GetValue()
		case d.Gauge != nil:
			sum += d.Gauge.GetValue()
		case d.Histogram != nil:
			sum += float64(d.Histogram.GetSampleCount())
		}
	}
	return sum
}
