package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// counters are one sender's running totals, read by the reporter while the
// sender runs.
type counters struct {
	sent     atomic.Int64 // records written to the socket (or posted)
	acked    atomic.Int64 // records whose ack came back
	requests atomic.Int64 // requests written
	errors   atomic.Int64 // failed connects, writes, reads, timeouts
	resent   atomic.Int64 // records written again after a failure
	bytes    atomic.Int64 // request bytes written
	printed  atomic.Int64 // docker: lines the containers printed
	lost     atomic.Int64 // docker: lines the logger did not send (Docker's limits)
}

// totals is a snapshot of counters.
type totals struct{ sent, acked, requests, errors, resent, bytes, printed, lost int64 }

func (t *totals) add(c *counters) {
	t.sent += c.sent.Load()
	t.acked += c.acked.Load()
	t.requests += c.requests.Load()
	t.errors += c.errors.Load()
	t.resent += c.resent.Load()
	t.bytes += c.bytes.Load()
	t.printed += c.printed.Load()
	t.lost += c.lost.Load()
}

// packedSender is a fluentd/Fluent Bit-style out_forward: PackedForward
// requests of Batch records (gzip-compressed when asked), with a chunk id
// when acks are wanted, up to Inflight requests outstanding on its one
// connection. After a failure it reconnects and sends the unacknowledged
// requests again, with the same chunk ids, as fluentd does.
type packedSender struct {
	cfg  *Config
	tag  string
	pool *Pool
	pos  int
	c    *counters
	hist Histogram
	// measureFrom: latencies of requests sent earlier are not recorded.
	measureFrom time.Time
	gz          *gzip.Writer
	zbuf        bytes.Buffer

	entries []byte
	free    [][]byte
	pending []pendingReq
	rbuf    []byte
	tmp     []byte
}

type pendingReq struct {
	req   []byte
	chunk string
	n     int
	start time.Time
}

func newPackedSender(cfg *Config, tag string, pool *Pool, start int, c *counters) *packedSender {
	s := &packedSender{cfg: cfg, tag: tag, pool: pool, pos: start % len(pool.Records), c: c, tmp: make([]byte, 4096)}
	if cfg.Gzip {
		s.gz, _ = gzip.NewWriterLevel(&s.zbuf, gzip.DefaultCompression)
	}
	return s
}

// build makes the next request in a reused buffer.
func (s *packedSender) build() pendingReq {
	now := event.Now()
	s.entries = s.entries[:0]
	for i := 0; i < s.cfg.Batch; i++ {
		s.entries = forward.AppendEntry(s.entries, now, s.pool.Records[s.pos].Msgpack)
		if s.pos++; s.pos == len(s.pool.Records) {
			s.pos = 0
		}
	}
	entries := s.entries
	opts := forward.Options{Size: s.cfg.Batch}
	if s.cfg.Gzip {
		s.zbuf.Reset()
		s.gz.Reset(&s.zbuf)
		s.gz.Write(entries)
		s.gz.Close()
		entries = s.zbuf.Bytes()
		opts.Compressed = "gzip"
	}
	p := pendingReq{n: s.cfg.Batch}
	if s.cfg.Ack {
		p.chunk = forward.NewChunkID()
		opts.Chunk = p.chunk
	}
	var buf []byte
	if k := len(s.free); k > 0 {
		buf, s.free = s.free[k-1][:0], s.free[:k-1]
	}
	p.req = forward.AppendPackedForward(buf, s.tag, entries, opts)
	return p
}

// run sends until ctx is done or the deadline passes, then waits up to
// AckTimeout for the acks of requests in flight.
func (s *packedSender) run(ctx context.Context, stopAt time.Time) {
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	// A cancelled ctx closes the connection so blocked I/O returns.
	var cur atomic.Pointer[net.Conn]
	stopWatch := context.AfterFunc(ctx, func() {
		if c := cur.Load(); c != nil {
			(*c).Close()
		}
	})
	defer stopWatch()

	window := max(s.cfg.Inflight, 1)
	pacer := newPacer(s.cfg.Rate)
	backoff := time.Duration(0)
	resend := 0 // pending requests still to be written on the current connection
	for {
		sending := time.Now().Before(stopAt) && ctx.Err() == nil
		if !sending && len(s.pending) == 0 {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if conn == nil {
			if backoff > 0 {
				if !sleepCtx(ctx, backoff) {
					return
				}
			}
			c, err := dial(ctx, s.cfg.Addr)
			if err != nil {
				s.c.errors.Add(1)
				backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
				if !sending && time.Since(stopAt) > s.cfg.AckTimeout {
					return
				}
				continue
			}
			conn = c
			cur.Store(&conn)
			resend = len(s.pending)
		}
		var err error
		switch {
		case resend > 0:
			p := &s.pending[len(s.pending)-resend]
			p.start = time.Now()
			err = s.write(conn, p.req)
			if err == nil {
				s.c.resent.Add(int64(p.n))
				resend--
			}
		case sending && len(s.pending) < window:
			if !pacer.wait(ctx, s.cfg.Batch) {
				continue
			}
			p := s.build()
			p.start = time.Now()
			err = s.write(conn, p.req)
			if err == nil {
				s.c.sent.Add(int64(p.n))
				s.c.requests.Add(1)
				s.c.bytes.Add(int64(len(p.req)))
				if s.cfg.Ack {
					s.pending = append(s.pending, p)
				} else {
					s.free = append(s.free, p.req)
				}
			} else {
				// Not written whole: the server may have half of it; send
				// it again on the next connection.
				s.c.sent.Add(int64(p.n))
				s.c.requests.Add(1)
				s.pending = append(s.pending, p)
				if !s.cfg.Ack {
					s.pending = s.pending[:0]
					s.free = append(s.free, p.req)
				}
			}
		default:
			err = s.readAck(conn, stopAt)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.c.errors.Add(1)
			conn.Close()
			conn = nil
			cur.Store(nil)
			s.rbuf = s.rbuf[:0]
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			if !sending && time.Since(stopAt) > s.cfg.AckTimeout {
				return
			}
			continue
		}
		backoff = 0
	}
}

func (s *packedSender) write(conn net.Conn, b []byte) error {
	conn.SetWriteDeadline(time.Now().Add(s.cfg.AckTimeout))
	_, err := conn.Write(b)
	return err
}

// readAck reads one ack and settles the oldest pending request with it.
func (s *packedSender) readAck(conn net.Conn, stopAt time.Time) error {
	deadline := time.Now().Add(s.cfg.AckTimeout)
	if !time.Now().Before(stopAt) {
		deadline = stopAt.Add(s.cfg.AckTimeout)
	}
	conn.SetReadDeadline(deadline)
	for {
		v, rest, err := msgpack.ReadRaw(s.rbuf, 8)
		if err == nil {
			ack, ok, _ := msgpack.MapGet(v, "ack", 4)
			id, _, aerr := msgpack.ReadStr(ack)
			p := &s.pending[0]
			if !ok || aerr != nil || string(id) != p.chunk {
				return fmt.Errorf("ack %q does not match chunk %q", id, p.chunk)
			}
			if !p.start.Before(s.measureFrom) {
				s.hist.Record(time.Since(p.start))
			}
			s.c.acked.Add(int64(p.n))
			s.free = append(s.free, p.req)
			s.pending = append(s.pending[:0], s.pending[1:]...)
			s.rbuf = append(s.rbuf[:0], rest...)
			return nil
		}
		if !errors.Is(err, msgpack.ErrShort) {
			return fmt.Errorf("read ack: %w", err)
		}
		n, err := conn.Read(s.tmp)
		s.rbuf = append(s.rbuf, s.tmp[:n]...)
		if err != nil {
			return err
		}
	}
}

// dial connects to addr: host:port, or unix:///path.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		network, addr = "unix", p
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, network, addr)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pacer spaces sends to a rate in records per second (0: no limit).
type pacer struct {
	rate float64
	next time.Time
}

func newPacer(rate float64) *pacer { return &pacer{rate: rate} }

// wait blocks until n more records may be sent; false when ctx is done.
func (p *pacer) wait(ctx context.Context, n int) bool {
	if p.rate <= 0 {
		return true
	}
	now := time.Now()
	if p.next.IsZero() || now.Sub(p.next) > time.Second {
		p.next = now // start, or fell far behind: do not burst
	}
	if d := p.next.Sub(now); d > 0 && !sleepCtx(ctx, d) {
		return false
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	return true
}
