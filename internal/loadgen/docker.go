package loadgen

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// dockerSender is one container logging through Docker's fluentd log
// driver: fluent-logger-golang configured as the driver configures it
// (daemon/logger/fluentd: 1 MiB buffer, 1 s retry wait, fluentd-async,
// fluentd-request-ack, fluentd-sub-second-precision), one Message-mode
// request per line, the record built per line as the driver builds it.
//
// With Config.Lines it is a slot that runs containers one after another
// (taken from next until Config.Containers have run): each prints Lines
// lines and exits, and its logger is closed as Docker closes it (see
// runContainer).
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
	next        *atomic.Int64 // Lines mode: the next container to run

	mu     sync.Mutex
	posted []time.Time // async: post times of lines not yet written, oldest first
	wrote  int64       // async: lines of the current container written
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
	if s.cfg.Lines == 0 {
		s.runContainer(ctx, stopAt, s.ctr, s.tag)
		return
	}
	for ctx.Err() == nil && time.Now().Before(stopAt) {
		i := int(s.next.Add(1)) - 1
		if i >= s.cfg.Containers {
			return
		}
		ctr := NewContainer(s.cfg.Seed, i)
		s.runContainer(ctx, stopAt, ctr, tagFor(s.cfg.Tag, i, ctr))
	}
}

// runContainer logs the lines of one container: for Duration (until
// stopAt), or, with Config.Lines, the container's Lines lines. Such a
// container prints as fast as its logger takes the lines, with PipeBytes of
// printed lines held by Docker in between (the container's stdout pipe, the
// shim's copy and the daemon's copier), so it exits once its last lines fit
// there. Docker then gives the logger ExitGrace to send what is held and
// closes it: what is left is lost (counted). With fluentd-async the driver
// takes every line at once and closing the logger (ForceStopAsyncSend)
// discards what the library has not written yet, as with Docker.
func (s *dockerSender) runContainer(ctx context.Context, stopAt time.Time, ctr Container, tag string) {
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
	lines := s.cfg.Lines
	base := s.pos
	held := 0 // bytes of printed lines not yet taken by the logger
	if lines > 0 {
		for i := 1; i <= lines; i++ {
			held += s.lineBytes(base, i)
		}
	}
	s.mu.Lock()
	s.wrote = 0
	s.mu.Unlock()
	posted := int64(0)
	var exited time.Time
	pacer := newPacer(s.cfg.Rate)
	for n := 1; ctx.Err() == nil && time.Now().Before(stopAt); n++ {
		if lines > 0 {
			if n > lines {
				break
			}
			if exited.IsZero() && held <= s.cfg.PipeBytes && !s.cfg.Async {
				exited = time.Now()
			}
			if !exited.IsZero() && time.Since(exited) > s.cfg.ExitGrace {
				s.c.printed.Add(int64(lines - n + 1))
				s.c.lost.Add(int64(lines - n + 1))
				break
			}
			held -= s.lineBytes(base, n)
		}
		if !pacer.wait(ctx, 1) {
			break
		}
		source, line := s.line(n)
		// What the driver's Log does for every line: a fresh map.
		data := map[string]string{
			"container_id":   ctr.ID,
			"container_name": ctr.Name,
			"source":         source,
			"log":            line,
		}
		s.c.printed.Add(1)
		start := time.Now()
		if s.cfg.Async {
			s.mu.Lock()
			s.posted = append(s.posted, start)
			s.mu.Unlock()
		}
		err := f.PostWithTime(tag, start, data)
		if s.cfg.Async {
			if err != nil {
				s.mu.Lock()
				s.posted = s.posted[:len(s.posted)-1]
				s.mu.Unlock()
				s.c.errors.Add(1)
				continue
			}
			s.c.sent.Add(1)
			posted++
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
	if s.cfg.Async && lines == 0 {
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
	if s.cfg.Async && lines > 0 {
		// Lines the library did not write before Close stopped it (as
		// Docker closes it once the container exited).
		s.mu.Lock()
		s.c.lost.Add(posted - s.wrote)
		s.posted = s.posted[:0]
		s.mu.Unlock()
	}
}

// line returns the source and log line of line n (from 1) of a container.
func (s *dockerSender) line(n int) (source, line string) {
	if s.cfg.Seq {
		return "stdout", strconv.Itoa(n)
	}
	rec := &s.pool.Records[s.pos]
	if s.pos++; s.pos == len(s.pool.Records) {
		s.pos = 0
	}
	return rec.Fields["source"], rec.Fields["log"]
}

// lineBytes is what line n takes in the container's stdout (the line and
// its newline) for a container whose first line is pool record base.
func (s *dockerSender) lineBytes(base, n int) int {
	if s.cfg.Seq {
		return len(strconv.Itoa(n)) + 1
	}
	return len(s.pool.Records[(base+n-1)%len(s.pool.Records)].Fields["log"]) + 1
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
	s.mu.Lock()
	s.wrote++
	s.mu.Unlock()
	if !start.IsZero() && !start.Before(s.measureFrom) {
		s.hist.Record(time.Since(start))
	}
	if s.cfg.Ack {
		s.c.acked.Add(1)
	}
}
