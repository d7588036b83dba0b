package loadgen

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// dockerSender is one container logging through Docker's fluentd log
// driver: fluent-logger-golang configured as the driver configures it
// (daemon/logger/fluentd: 1 MiB buffer, 1 s retry wait, fluentd-async,
// fluentd-request-ack, fluentd-sub-second-precision), one Message-mode
// request per line, the record built per line as the driver builds it.
type dockerSender struct {
	cfg  *Config
	tag  string
	ctr  Container
	pool *Pool
	pos  int
	c    *counters
	hist Histogram
	// measureFrom: latencies of lines posted earlier are not recorded.
	measureFrom time.Time

	mu     sync.Mutex
	posted []time.Time // async: post times of lines not yet written, oldest first
}

func newDockerSender(cfg *Config, tag string, ctr Container, pool *Pool, start int, c *counters) *dockerSender {
	return &dockerSender{cfg: cfg, tag: tag, ctr: ctr, pool: pool, pos: start % len(pool.Records), c: c}
}

// dockerConfig is fluent.Config as Docker's driver builds it for addr, with
// the retry count bounded so that a run ends.
func dockerConfig(addr string, async, ack, subSecond bool) (fluent.Config, error) {
	c := fluent.Config{
		FluentNetwork:      "tcp",
		BufferLimit:        1024 * 1024,
		RetryWait:          1000,
		MaxRetry:           5, // Docker: math.MaxInt32
		Async:              async,
		ForceStopAsyncSend: async,
		SubSecondPrecision: subSecond,
		RequestAck:         ack,
		// Docker leaves these at the library's defaults (3 s connect,
		// no read/write timeouts).
	}
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		c.FluentNetwork, c.FluentSocketPath = "unix", p
		return c, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return c, fmt.Errorf("parse address %q: %w", addr, err)
	}
	c.FluentHost = host
	if c.FluentPort, err = strconv.Atoi(port); err != nil {
		return c, fmt.Errorf("parse address %q: bad port", addr)
	}
	return c, nil
}

func (s *dockerSender) run(ctx context.Context, stopAt time.Time) {
	fc, err := dockerConfig(s.cfg.Addr, s.cfg.Async, s.cfg.Ack, s.cfg.SubSecond)
	if err != nil {
		s.c.errors.Add(1)
		return
	}
	if s.cfg.Async {
		fc.AsyncResultCallback = s.written
	}
	var f *fluent.Fluent
	for f == nil {
		if f, err = fluent.New(fc); err != nil {
			s.c.errors.Add(1)
			if !sleepCtx(ctx, 100*time.Millisecond) || !time.Now().Before(stopAt) {
				return
			}
		}
	}
	pacer := newPacer(s.cfg.Rate)
	for ctx.Err() == nil && time.Now().Before(stopAt) {
		if !pacer.wait(ctx, 1) {
			break
		}
		rec := &s.pool.Records[s.pos]
		if s.pos++; s.pos == len(s.pool.Records) {
			s.pos = 0
		}
		// What the driver's Log does for every line: a fresh map.
		data := map[string]string{
			"container_id":   s.ctr.ID,
			"container_name": s.ctr.Name,
			"source":         rec.Fields["source"],
			"log":            rec.Fields["log"],
		}
		start := time.Now()
		if s.cfg.Async {
			s.mu.Lock()
			s.posted = append(s.posted, start)
			s.mu.Unlock()
		}
		err := f.PostWithTime(s.tag, start, data)
		if s.cfg.Async {
			if err != nil {
				s.mu.Lock()
				s.posted = s.posted[:len(s.posted)-1]
				s.mu.Unlock()
				s.c.errors.Add(1)
				continue
			}
			s.c.sent.Add(1)
			continue
		}
		s.c.sent.Add(1)
		s.c.requests.Add(1)
		if err != nil {
			s.c.errors.Add(1)
			continue
		}
		if s.cfg.Ack && !start.Before(s.measureFrom) {
			s.hist.Record(time.Since(start))
		}
		if s.cfg.Ack {
			s.c.acked.Add(1)
		}
	}
	if s.cfg.Async {
		// Let the library write what is queued, up to AckTimeout.
		deadline := time.Now().Add(s.cfg.AckTimeout)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			s.mu.Lock()
			n := len(s.posted)
			s.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	f.Close()
}

// written is the async callback: the oldest posted line was written (and
// acked, with RequestAck) or failed.
func (s *dockerSender) written(_ []byte, err error) {
	s.mu.Lock()
	var start time.Time
	if len(s.posted) > 0 {
		start = s.posted[0]
		s.posted = s.posted[1:]
	}
	s.mu.Unlock()
	s.c.requests.Add(1)
	if err != nil {
		s.c.errors.Add(1)
		return
	}
	if !start.IsZero() && !start.Before(s.measureFrom) {
		s.hist.Record(time.Since(start))
	}
	if s.cfg.Ack {
		s.c.acked.Add(1)
	}
}
