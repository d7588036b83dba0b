package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/sinktest"
)

// idCollector is an aggregator's consumer: it counts every event by its
// "id" field and keeps the ids per tag in arrival order. failTag makes
// Consume refuse a tag (no ack).
type idCollector struct {
	mu      sync.Mutex
	count   map[string]int
	byTag   map[string][]string
	batches int
	failTag string
	discard bool // count events only (benchmarks)
	n       int
}

func newIDCollector() *idCollector {
	return &idCollector{count: map[string]int{}, byTag: map[string][]string{}}
}

func (c *idCollector) Consume(_ context.Context, b *event.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failTag != "" && b.Tag == c.failTag {
		return fmt.Errorf("refusing tag %s", b.Tag)
	}
	c.batches++
	if c.discard {
		c.n += len(b.Events)
		return nil
	}
	for _, e := range b.Events {
		v, _, _ := msgpack.MapGet(e.Record, "id", 4)
		id, _, _ := msgpack.ReadStr(v)
		c.count[string(id)]++
		c.byTag[b.Tag] = append(c.byTag[b.Tag], string(id))
	}
	return nil
}

func (c *idCollector) setFail(tag string) {
	c.mu.Lock()
	c.failTag = tag
	c.mu.Unlock()
}

func (c *idCollector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.count {
		n += k
	}
	return n
}

func (c *idCollector) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[id]
}

// aggregator is a forward.Server on loopback that can be stopped and
// started again on the same address.
type aggregator struct {
	t      testing.TB
	src    config.Source
	coll   *idCollector
	addr   string
	srv    *forward.Server
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	logs   *logBuffer // the server's log, debug level
}

// startAggregator starts a server; edit adjusts its source config.
func startAggregator(t testing.TB, name string, edit func(*config.Source)) *aggregator {
	t.Helper()
	hb := true
	src := config.Source{
		Type: "forward", Name: name, Listen: "127.0.0.1:0", Heartbeat: &hb,
		ChunkSizeLimit: config.DefaultChunkSizeLimit, MaxDecompressedSize: config.DefaultMaxDecompressedSize,
		MaxDepth: config.DefaultMaxDepth, MaxConnections: 100,
		Dedup: &config.Dedup{Window: config.Duration(time.Minute), MaxEntries: 10000},
	}
	if edit != nil {
		edit(&src)
	}
	a := &aggregator{t: t, src: src, coll: newIDCollector(), logs: &logBuffer{}}
	a.start()
	a.addr = a.srv.Addr().String()
	a.src.Listen = a.addr
	t.Cleanup(a.stop)
	return a
}

func (a *aggregator) start() {
	a.t.Helper()
	a.reg = prometheus.NewRegistry()
	var err error
	// The old socket may linger a moment after a restart.
	testutil.WaitUntil(a.t, 5*time.Second, "the aggregator to listen", func() bool {
		a.srv, err = forward.NewServer(forward.ServerOptions{Config: a.src, Next: a.coll, Registerer: a.reg,
			Hostname: "aggregator", Logger: slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		return err == nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	srv := a.srv
	go func() { a.done <- srv.Run(ctx) }()
}

// stop shuts the server down gracefully; safe to call when stopped.
func (a *aggregator) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	if err := <-a.done; err != nil {
		a.t.Errorf("aggregator Run: %v", err)
	}
	a.srv.Close()
	a.cancel = nil
}

// metric reads one of the server's series.
func (a *aggregator) metric(name string) float64 {
	mfs, err := a.reg.Gather()
	if err != nil {
		a.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// fwdSinkYAML is a forward output on the given servers with short timers.
func fwdSinkYAML(servers []string, extra string) string {
	var b strings.Builder
	b.WriteString("  - type: forward\n    name: fwd\n")
	for _, d := range []string{"heartbeat_interval: 50ms", "connect_timeout: 1s", "ack_response_timeout: 1s", "send_timeout: 1s"} {
		if !strings.Contains(extra, d[:strings.IndexByte(d, ':')+1]) {
			b.WriteString("    " + d + "\n")
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(extra), "\n") {
		if l != "" {
			b.WriteString("    " + strings.TrimSpace(l) + "\n")
		}
	}
	b.WriteString("    servers:\n")
	for _, s := range servers {
		b.WriteString("      - " + s + "\n")
	}
	return b.String()
}

// serverEntry is a servers list item for an aggregator.
func serverEntry(name string, a *aggregator, more string) string {
	host, port, _ := net.SplitHostPort(a.addr)
	s := fmt.Sprintf("{name: %s, host: %s, port: %s", name, host, port)
	if more != "" {
		s += ", " + more
	}
	return s + "}"
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newFwdSink builds a forward sink from output YAML.
func newFwdSink(t testing.TB, outputs string) (*Forward, *logBuffer) {
	t.Helper()
	return newFwdSinkIn(t, "", outputs)
}

// newFwdSinkIn builds a forward sink that keeps its progress under dataDir
// ("" : in memory only).
func newFwdSinkIn(t testing.TB, dataDir, outputs string) (*Forward, *logBuffer) {
	t.Helper()
	_, out := sinktest.Output(t, t.TempDir(), outputs)
	logs := &logBuffer{}
	f, err := NewForward(Options{Output: out, Node: "agent-1", DataDir: dataDir, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("NewForward: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f, logs
}

func (f *Forward) server(name string) *fwdServer {
	for _, s := range f.servers {
		if s.name == name {
			return s
		}
	}
	panic("no server " + name)
}

// waitUp waits until the sink sees the server as up (or down).
func waitUp(t *testing.T, f *Forward, name string, up bool) {
	t.Helper()
	testutil.WaitUntil(t, 10*time.Second, fmt.Sprintf("server %s up=%v", name, up),
		func() bool { return f.server(name).isUp() == up })
}

// counterOf reads a counter or gauge.
func counterOf(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue() + d.GetGauge().GetValue()
}

// idRecord is a record with an id and a padding log line.
func idRecord(id string, pad int) []byte {
	b := msgpack.AppendMapHeader(nil, 2)
	b = msgpack.AppendString(b, "id")
	b = msgpack.AppendString(b, id)
	b = msgpack.AppendString(b, "log")
	return msgpack.AppendString(b, strings.Repeat("x", pad))
}

// idChunk is a chunk of n events of one tag, ids "<chunk id>-<i>".
func idChunk(id, tag string, n, pad int) *sinktest.Chunk {
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: id, Output: "fwd", Tag: tag, Created: time.Now()}}
	for i := range n {
		r := idRecord(fmt.Sprintf("%s-%d", id, i), pad)
		c.Events = append(c.Events, sinktest.Event{Tag: tag, Time: event.FromUnix(1700000000, int64(i)), Record: r})
		c.ChunkInfo.Bytes += int64(len(r))
	}
	c.ChunkInfo.Events = int64(n)
	return c
}
