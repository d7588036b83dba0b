package loadgen

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []time.Duration
	for i := 0; i < 100000; i++ {
		// Log-uniform from 1µs to 1s.
		d := time.Duration(1e3 * pow10(6*r.Float64()))
		all = append(all, d)
		h.Record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if rel := float64(got-exact) / float64(exact); rel > 0.04 || rel < -0.04 {
			t.Errorf("q%.3f = %v, exact %v (%.1f%% off)", q, got, exact, 100*rel)
		}
	}
	if h.Max() != all[len(all)-1] || h.Count() != uint64(len(all)) {
		t.Errorf("max %v count %d, want %v %d", h.Max(), h.Count(), all[len(all)-1], len(all))
	}
	var h2 Histogram
	h2.Record(5 * time.Millisecond)
	h2.Merge(&h)
	if h2.Count() != h.Count()+1 {
		t.Errorf("merged count %d", h2.Count())
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if mid := bucketMid(bucketOf(v)); bucketOf(mid) != bucketOf(v) {
			t.Fatalf("bucket of %d is %d, its middle %d is in bucket %d", v, bucketOf(v), mid, bucketOf(mid))
		}
	}
}

func pow10(x float64) float64 {
	v := 1.0
	for ; x >= 1; x-- {
		v *= 10
	}
	return v * (1 + x*9) // coarse, monotonic: enough for a spread of values
}

func TestRecordsAreDockerShaped(t *testing.T) {
	ctrs := []Container{NewContainer(7, 0), NewContainer(7, 1)}
	if ctrs[0] == ctrs[1] || NewContainer(7, 0) != ctrs[0] {
		t.Fatal("containers are not distinct and reproducible")
	}
	p := NewPool(7, 2000, ctrs, DefaultLogSize)
	if m := p.MeanSize(); m < 310 || m > 350 {
		t.Errorf("mean record size %.0f, want about 330", m)
	}
	distinct := map[string]bool{}
	for i, r := range p.Records {
		id, _, _ := msgpack.MapGet(r.Msgpack, "container_id", 4)
		idv, _, _ := msgpack.ReadStr(id)
		if _, err := hex.DecodeString(string(idv)); err != nil || len(idv) != 64 || string(idv) != r.Fields["container_id"] {
			t.Fatalf("record %d: container_id %q", i, idv)
		}
		if !strings.HasPrefix(r.Fields["container_name"], "/") {
			t.Fatalf("record %d: container_name %q", i, r.Fields["container_name"])
		}
		if s := r.Fields["source"]; s != "stdout" && s != "stderr" {
			t.Fatalf("record %d: source %q", i, s)
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(r.Fields["log"]), &line); err != nil {
			t.Fatalf("record %d: log is not JSON: %v: %s", i, err, r.Fields["log"])
		}
		if l := len(r.Fields["log"]); l < DefaultLogSize-2 || l > DefaultLogSize+2 {
			t.Fatalf("record %d: log line of %d bytes, want about %d", i, l, DefaultLogSize)
		}
		distinct[r.Fields["log"]] = true
	}
	if len(distinct) < 1990 {
		t.Errorf("only %d distinct lines in 2000", len(distinct))
	}
	// A larger size is honoured.
	if l := len(LogLine(rand.New(rand.NewPCG(1, 1)), 2000)); l != 2000 {
		t.Errorf("log line of %d bytes, want 2000", l)
	}
}

func TestParseMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maruta_buffer_delivered_events_total", Help: "x"}, []string{"output"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "maruta_process_resident_memory_bytes", Help: "x"})
	reg.MustRegister(c, g)
	c.WithLabelValues("a").Add(3)
	c.WithLabelValues("b{}").Add(4)
	g.Set(1.5e8)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	s, err := NewTarget(srv.URL, 0).Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Delivered != 7 || s.RSS != 1.5e8 || s.Accepted != -1 {
		t.Errorf("delivered %v rss %v accepted %v", s.Delivered, s.RSS, s.Accepted)
	}
	m, _ := ParseMetrics(bufio.NewScanner(strings.NewReader("# HELP x\nfoo 2\nfoo{a=\"1\"} 3 1700000000\nbar{a=\"}\"} 1e3\n")))
	if m["foo"] != 5 || m["bar"] != 1000 {
		t.Errorf("parsed %v", m)
	}
}

func TestProcStat(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cpu, rss, err := ProcStat(os.Getpid())
	if err != nil || cpu < 0 || rss < 1<<20 {
		t.Fatalf("cpu %v rss %v err %v", cpu, rss, err)
	}
}

// counting is a consumer that checks and counts what the server hands on.
type counting struct {
	events  atomic.Int64
	mu      sync.Mutex
	tags    map[string]int
	badSeen atomic.Int64
}

func (c *counting) Consume(_ context.Context, b *event.Batch) error {
	for _, e := range b.Events {
		if _, ok, _ := msgpack.MapGet(e.Record, "log", 4); !ok {
			c.badSeen.Add(1)
		}
	}
	c.events.Add(int64(len(b.Events)))
	c.mu.Lock()
	c.tags[b.Tag] += len(b.Events)
	c.mu.Unlock()
	return nil
}

func startForward(t *testing.T) (string, *counting) {
	t.Helper()
	cons := &counting{tags: map[string]int{}}
	return serveForward(t, cons), cons
}

// serveForward runs a Forward server that hands requests to next until the
// test ends, and returns its address.
func serveForward(t *testing.T, next event.Consumer) string {
	t.Helper()
	hb := false
	src := config.Source{Type: "forward", Name: "t", Listen: "127.0.0.1:0", Heartbeat: &hb,
		ChunkSizeLimit: config.DefaultChunkSizeLimit, MaxDecompressedSize: config.DefaultMaxDecompressedSize,
		MaxDepth: config.DefaultMaxDepth, MaxConnections: 1000}
	srv, err := forward.NewServer(forward.ServerOptions{Config: src, Next: next})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.Addr().String()
}

func TestRunAgainstForwardServer(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"packed ack", Config{Mode: "packed", Senders: 3, Batch: 50, Ack: true}},
		{"packed ack inflight gzip", Config{Mode: "packed", Senders: 2, Batch: 20, Ack: true, Inflight: 4, Gzip: true}},
		{"packed no ack rate", Config{Mode: "packed", Senders: 2, Batch: 10, Rate: 2000}},
		{"docker sync ack subsecond", Config{Mode: "docker", Senders: 4, Ack: true, SubSecond: true}},
		{"docker async ack", Config{Mode: "docker", Senders: 2, Ack: true, Async: true, Rate: 500}},
		{"docker sync no ack", Config{Mode: "docker", Senders: 2, Rate: 300}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, cons := startForward(t)
			cfg := tc.cfg
			cfg.Addr = addr
			cfg.Duration = 700 * time.Millisecond
			cfg.Warmup = 100 * time.Millisecond
			cfg.Interval = 200 * time.Millisecond
			cfg.Tag = "bench.{i}"
			cfg.AckTimeout = 5 * time.Second
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent == 0 || res.Errors != 0 || res.SentPerSec <= 0 {
				t.Fatalf("sent %d (%.0f/s), errors %d", res.Sent, res.SentPerSec, res.Errors)
			}
			// Everything acked (or, without acks, sent) reached the server.
			want := res.Sent
			if cfg.Ack {
				if res.Acked != res.Sent {
					t.Errorf("acked %d of %d sent", res.Acked, res.Sent)
				}
				l := res.Latency
				if l.Count == 0 || !(l.P50 > 0 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
					t.Errorf("latency %+v", l)
				}
			} else {
				testutil.WaitUntil(t, 5*time.Second, fmt.Sprintf("%d events", want), func() bool { return cons.events.Load() >= want })
			}
			if got := cons.events.Load(); got != want {
				t.Errorf("server took %d events, the load generator counted %d", got, want)
			}
			if cons.badSeen.Load() != 0 {
				t.Errorf("%d records without a log key", cons.badSeen.Load())
			}
			cons.mu.Lock()
			if len(cons.tags) != cfg.Senders {
				t.Errorf("tags %v, want one per sender", cons.tags)
			}
			cons.mu.Unlock()
			if cfg.Rate > 0 {
				max := cfg.Rate * float64(cfg.Senders) * 1.2
				if res.SentPerSec > max {
					t.Errorf("%.0f records/s with a limit of %.0f", res.SentPerSec, max/1.2)
				}
			}
			if len(res.Timeline) < 2 {
				t.Errorf("timeline of %d points", len(res.Timeline))
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Mode: "http"},
		{Mode: "packed", Async: true},
		{Mode: "docker", Gzip: true},
		{Duration: time.Second, Warmup: 2 * time.Second},
		{Rate: -1},
		{Mode: "packed", Lines: 10},
		{Mode: "docker", Lines: -1},
	} {
		c.Defaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestResentAfterServerGoesAway(t *testing.T) {
	// A sender whose connection breaks sends its unacked requests again on
	// a new one: the first server acks nothing and closes.
	hb := false
	src := config.Source{Type: "forward", Name: "t", Listen: "127.0.0.1:0", Heartbeat: &hb,
		ChunkSizeLimit: config.DefaultChunkSizeLimit, MaxDecompressedSize: config.DefaultMaxDecompressedSize,
		MaxDepth: config.DefaultMaxDepth, MaxConnections: 10}
	var refused atomic.Int64
	cons := &counting{tags: map[string]int{}}
	next := event.ConsumerFunc(func(ctx context.Context, b *event.Batch) error {
		if refused.Add(1) <= 2 {
			return context.Canceled // not acked; the server closes the connection
		}
		return cons.Consume(ctx, b)
	})
	srv, err := forward.NewServer(forward.ServerOptions{Config: src, Next: next})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	res, err := Run(context.Background(), Config{Addr: srv.Addr().String(), Mode: "packed", Senders: 1, Batch: 5,
		Ack: true, Duration: 500 * time.Millisecond, AckTimeout: 5 * time.Second, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.Resent == 0 {
		t.Errorf("errors %d resent %d: the refusals were not seen", res.Errors, res.Resent)
	}
	if res.Acked != res.Sent || cons.events.Load() != res.Acked {
		t.Errorf("sent %d acked %d server kept %d", res.Sent, res.Acked, cons.events.Load())
	}
}

// TestDockerContainersExit: with Lines, containers print their lines and
// exit, -senders at a time, one connection each; a logger that is still
// sending ExitGrace after its container exited is closed and its lines
// counted lost, as Docker does.
func TestDockerContainersExit(t *testing.T) {
	addr, cons := startForward(t)
	res, err := Run(context.Background(), Config{Addr: addr, Mode: "docker", Senders: 2, Containers: 5, Lines: 300,
		Seq: true, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Printed != 1500 || res.Lost != 0 || res.Sent != 1500 || res.Errors != 0 || res.Containers != 5 {
		t.Fatalf("printed %d lost %d sent %d errors %d containers %d", res.Printed, res.Lost, res.Sent, res.Errors, res.Containers)
	}
	testutil.WaitUntil(t, 5*time.Second, "1500 events", func() bool { return cons.events.Load() == 1500 })
	cons.mu.Lock()
	if len(cons.tags) != 5 {
		t.Errorf("tags %v, want one per container", cons.tags)
	}
	cons.mu.Unlock()

	// A collector that takes 2ms per request: the containers exit at once
	// (their lines fit in the pipe) and their loggers are closed 200ms later.
	slow := &counting{tags: map[string]int{}}
	slowAddr := serveForward(t, event.ConsumerFunc(func(ctx context.Context, b *event.Batch) error {
		time.Sleep(2 * time.Millisecond)
		return slow.Consume(ctx, b)
	}))
	res, err = Run(context.Background(), Config{Addr: slowAddr, Mode: "docker", Senders: 2, Lines: 5000,
		Seq: true, ExitGrace: 200 * time.Millisecond, Ack: true, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Printed != 10000 || res.Lost == 0 || res.Sent+res.Lost != res.Printed {
		t.Fatalf("printed %d lost %d sent %d", res.Printed, res.Lost, res.Sent)
	}
	if got := slow.events.Load(); got != res.Acked || res.Acked != res.Sent {
		t.Errorf("collector kept %d, acked %d, sent %d", got, res.Acked, res.Sent)
	}
}
