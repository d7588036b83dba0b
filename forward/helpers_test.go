package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSource is a source with the production defaults, on a free port.
func testSource() config.Source {
	hb := true
	return config.Source{
		Type:                "forward",
		Name:                "test",
		Listen:              "127.0.0.1:0",
		Heartbeat:           &hb,
		ChunkSizeLimit:      config.DefaultChunkSizeLimit,
		MaxDecompressedSize: config.DefaultMaxDecompressedSize,
		MaxDepth:            config.DefaultMaxDepth,
		MaxConnections:      config.DefaultMaxConnections,
	}
}

// got is one event as the consumer saw it, copied.
type got struct {
	Tag    string
	Time   event.Time
	Record []byte
}

// collector is a consumer that keeps copies of everything it is given.
// fail makes Consume return an error for a tag; hook runs inside Consume.
type collector struct {
	mu      sync.Mutex
	events  []got
	batches int
	fail    map[string]error
	hook    func(ctx context.Context, b *event.Batch) error
	notify  chan struct{}
}

func newCollector() *collector {
	return &collector{fail: map[string]error{}, notify: make(chan struct{}, 1)}
}

func (c *collector) Consume(ctx context.Context, b *event.Batch) error {
	c.mu.Lock()
	hook := c.hook
	err := c.fail[b.Tag]
	c.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, b); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.batches++
	for _, e := range b.Events {
		c.events = append(c.events, got{Tag: b.Tag, Time: e.Time, Record: bytes.Clone(e.Record)})
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

// take returns and forgets the events whose tag is not in skip.
func (c *collector) take(skip ...string) []got {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []got
	for _, e := range c.events {
		keep := true
		for _, s := range skip {
			if e.Tag == s {
				keep = false
			}
		}
		if keep {
			out = append(out, e)
		}
	}
	c.events = nil
	return out
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// waitCount waits until at least n events arrived.
func (c *collector) waitCount(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d", c.count(), n)
		}
		select {
		case <-c.notify:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// testServer is a running Server with its own registry.
type testServer struct {
	*Server
	reg  *prometheus.Registry
	coll *collector
	done chan error
	stop context.CancelFunc
}

func startServer(t testing.TB, src config.Source, next event.Consumer, mod ...func(*ServerOptions)) *testServer {
	t.Helper()
	coll, _ := next.(*collector)
	reg := prometheus.NewRegistry()
	opts := ServerOptions{Config: src, Next: next, Registerer: reg, Hostname: "server.example", Logger: testLogger(t)}
	for _, f := range mod {
		f(&opts)
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, reg: reg, coll: coll, done: make(chan error, 1), stop: cancel}
	go func() { ts.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			s.Close()
			t.Errorf("Run did not return after its context was cancelled")
			<-ts.done
		}
		s.Close()
	})
	return ts
}

// alive reports whether Run is still running.
func (ts *testServer) alive() bool {
	select {
	case err := <-ts.done:
		ts.done <- err
		return false
	default:
		return true
	}
}

func (ts *testServer) errCount(reason string) float64 {
	return metricValue(ts.m.errors.WithLabelValues(reason))
}

func (ts *testServer) openConns() float64 { return metricValue(ts.m.connsOpen) }

// waitConns waits until n connections are open.
func (ts *testServer) waitConns(t testing.TB, n float64) {
	t.Helper()
	testutil.WaitUntil(t, 5*time.Second, fmt.Sprintf("%v open connections (now %v)", n, ts.openConns()),
		func() bool { return ts.openConns() == n })
}

// errorCounts returns every errors_total value by reason.
func (ts *testServer) errorCounts() map[string]float64 {
	out := map[string]float64{}
	for _, r := range allReasons {
		out[r] = ts.errCount(r)
	}
	return out
}

func (ts *testServer) invalidCounts() map[string]float64 {
	out := map[string]float64{}
	for i, name := range invalidNames {
		out[name] = metricValue(ts.m.invalid[i])
	}
	return out
}

var allReasons = []string{
	reasonInvalidMsgpack, reasonTooLarge, reasonTooDeep, reasonDecompressedSize, reasonDecompressBudget,
	reasonBadRequest, reasonBadCompression, reasonBadEntries, reasonConsumeFailed,
	reasonIdleTimeout, reasonMaxConnections, reasonAuthFailed, reasonTLSHandshake,
	reasonReadError, reasonWriteError,
}

// client is a raw test connection.
type client struct {
	t   testing.TB
	nc  net.Conn
	buf []byte
}

func dial(t testing.TB, addr net.Addr) *client {
	t.Helper()
	nc, err := net.DialTimeout(addr.Network(), addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

// send writes b in pieces of split bytes (all at once when split <= 0). A
// write error is returned, not fatal: the server may close first.
func (c *client) send(b []byte, split int) error {
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if split <= 0 {
		_, err := c.nc.Write(b)
		return err
	}
	for len(b) > 0 {
		n := min(split, len(b))
		if _, err := c.nc.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readValue reads one msgpack value the server sent.
func (c *client) readValue(timeout time.Duration) ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		if len(c.buf) > 0 {
			n, err := msgpack.Skip(c.buf, 16)
			if err == nil {
				v := bytes.Clone(c.buf[:n])
				c.buf = c.buf[n:]
				return v, nil
			}
			if !errors.Is(err, msgpack.ErrShort) {
				return nil, err
			}
		}
		var tmp [4096]byte
		n, err := c.nc.Read(tmp[:])
		c.buf = append(c.buf, tmp[:n]...)
		if err != nil {
			return nil, err
		}
	}
}

// readAck reads one ack and returns its raw chunk value.
func (c *client) readAck(timeout time.Duration) ([]byte, error) {
	v, err := c.readValue(timeout)
	if err != nil {
		return nil, err
	}
	if v[0] != 0x81 {
		return nil, errors.New("ack is not a map of one pair")
	}
	return ParseAck(v)
}

// expectClosed reads until the server closes the connection; nothing may
// arrive before.
func (c *client) expectClosed(timeout time.Duration) {
	c.t.Helper()
	v, err := c.readValue(timeout)
	if err == nil {
		c.t.Fatalf("got %x, want the connection closed", v)
	}
	if isTimeout(err) {
		c.t.Fatalf("connection still open after %v", timeout)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// msgpack builders for requests.

func str(s string) []byte       { return msgpack.AppendString(nil, s) }
func bin(b []byte) []byte       { return msgpack.AppendBin(nil, b) }
func num(n int64) []byte        { return msgpack.AppendInt(nil, n) }
func nilv() []byte              { return []byte{0xc0} }
func et(sec, nsec int64) []byte { return msgpack.AppendEventTime(nil, sec, nsec) }

// arr builds an array of raw elements.
func arr(elems ...[]byte) []byte {
	b := msgpack.AppendArrayHeader(nil, len(elems))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

// obj builds a map of raw keys and values, alternating.
func obj(kv ...[]byte) []byte {
	b := msgpack.AppendMapHeader(nil, len(kv)/2)
	for _, e := range kv {
		b = append(b, e...)
	}
	return b
}

// rec builds a record of str keys and str values.
func rec(kv ...string) []byte {
	b := msgpack.AppendMapHeader(nil, len(kv)/2)
	for _, s := range kv {
		b = msgpack.AppendString(b, s)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func entry(t, r []byte) []byte { return arr(t, r) }

func chunkOpt(chunk string) []byte { return obj(str("chunk"), str(chunk)) }

func gz(members ...[]byte) []byte {
	var out bytes.Buffer
	for _, m := range members {
		w := gzip.NewWriter(&out)
		w.Write(m)
		w.Close()
	}
	return out.Bytes()
}

func zst(data []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}

// testLogger logs warnings and errors to the test log (shown on failure
// or with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
