package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one benchmark run.
type Config struct {
	// Addr is the Forward address: host:port or unix:///path.
	Addr string
	// Mode is "packed" (fluentd/Fluent Bit out_forward: PackedForward
	// requests of Batch records) or "docker" (Docker's fluentd log driver:
	// one Message request per record, through fluent-logger-golang).
	Mode    string
	Senders int
	// Batch is the records per PackedForward request (packed).
	Batch int
	// Gzip compresses each request's entries (packed, compressed=gzip).
	Gzip bool
	// Ack asks for acks: a chunk option per request, waited for (packed);
	// fluentd-request-ack (docker).
	Ack bool
	// Inflight is how many requests a packed sender has outstanding before
	// it waits for an ack (with Ack). Default 1: send, wait, send.
	Inflight int
	// Async is fluentd-async (docker): Post queues, the library writes.
	Async bool
	// SubSecond is fluentd-sub-second-precision (docker): EventTime.
	SubSecond bool
	// LogSize is the size of the JSON log line in bytes.
	LogSize int
	// Containers is how many containers the records of packed senders come
	// from (docker: one container per sender; with Lines, how many
	// containers run in all, at most Senders at once; default Senders).
	Containers int
	// Lines (docker): each container prints this many lines and exits, as
	// a container running `seq 1 N` does, and the run ends when every
	// container has; Duration then only bounds the run. 0: each sender logs
	// for Duration.
	Lines int
	// Seq (docker): the log lines are the line numbers, as `seq` prints
	// them, instead of JSON access-log lines of LogSize bytes.
	Seq bool
	// PipeBytes (docker, with Lines): bytes of printed lines Docker holds
	// between a container and its logger, so a container exits when its
	// last lines fit there. Default DefaultPipeBytes.
	PipeBytes int
	// ExitGrace (docker, with Lines): how long the logger may send after
	// its container exited before Docker closes it; the lines left are
	// lost. Default 10s, Docker's.
	ExitGrace time.Duration
	// Tag is each sender's tag; {i} is replaced by the sender's number,
	// {name} by its container's name (without "/") and {id} by its short id.
	Tag string
	// Rate limits each sender to this many records per second (0: as fast as
	// the target takes them).
	Rate float64
	// Duration is how long senders send; rates are measured after Warmup.
	Duration, Warmup time.Duration
	// AckTimeout bounds the wait for one ack (and for acks of requests in
	// flight when the run ends).
	AckTimeout time.Duration
	// Metrics is maruta's HTTP address (host:port or URL): its counters,
	// CPU and RSS are read, and after the run the drain is waited for.
	Metrics string
	// PID is maruta's process id: CPU and RSS from /proc/<pid>/stat.
	PID int
	// Drain bounds the wait, after the senders stopped, until maruta has
	// delivered every event it accepted.
	Drain time.Duration
	// Interval is the progress and timeline period.
	Interval time.Duration
	// Seed makes container ids and records reproducible.
	Seed uint64
	// Progress receives one line per Interval (nil: none).
	Progress io.Writer
}

// DefaultPipeBytes is what Docker 20.10 holds between a container's stdout
// and its fluentd logger in blocking mode, roughly: the stdout pipe (64 KiB),
// containerd-shim's copy buffer (32 KiB) and its FIFO to the daemon
// (64 KiB), the daemon's copier buffer (16 KiB). With it the load generator
// loses what a real daemon lost at the same collector speed (issue 12: 46%
// of `seq 1 50000` lines at about one line per fsync round).
const DefaultPipeBytes = 176 << 10

// Defaults fills in zero fields.
func (c *Config) Defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:24224"
	}
	if c.Mode == "" {
		c.Mode = "packed"
	}
	if c.Senders == 0 {
		c.Senders = 16
	}
	if c.Batch == 0 {
		c.Batch = 1000
	}
	if c.Inflight == 0 {
		c.Inflight = 1
	}
	if c.LogSize == 0 {
		c.LogSize = DefaultLogSize
	}
	if c.Containers == 0 {
		c.Containers = 50
		if c.Mode == "docker" {
			c.Containers = c.Senders
		}
	}
	if c.PipeBytes == 0 {
		c.PipeBytes = DefaultPipeBytes
	}
	if c.ExitGrace == 0 {
		c.ExitGrace = 10 * time.Second
	}
	if c.Tag == "" {
		c.Tag = "docker.{name}"
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
		if c.Lines > 0 {
			c.Duration = 30 * time.Minute // a bound: the containers end the run
		}
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 60 * time.Second
	}
	if c.Drain == 0 {
		c.Drain = 2 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// Validate reports a config Run cannot use.
func (c *Config) Validate() error {
	switch c.Mode {
	case "packed", "docker":
	default:
		return fmt.Errorf("unknown mode %q (packed or docker)", c.Mode)
	}
	switch {
	case c.Senders < 1:
		return errors.New("senders must be at least 1")
	case c.Batch < 1:
		return errors.New("batch must be at least 1")
	case c.Inflight < 1:
		return errors.New("inflight must be at least 1")
	case c.LogSize < 1:
		return errors.New("log size must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0 || c.Warmup >= c.Duration:
		return errors.New("duration must be positive and longer than the warmup")
	case c.Rate < 0:
		return errors.New("rate must not be negative")
	case c.Async && c.Mode != "docker":
		return errors.New("async is a docker mode option")
	case (c.Lines != 0 || c.Seq) && c.Mode != "docker":
		return errors.New("lines and seq are docker mode options")
	case c.Lines < 0 || c.PipeBytes < 0 || c.ExitGrace < 0:
		return errors.New("lines, pipe bytes and exit grace must not be negative")
	case c.Gzip && c.Mode != "packed":
		return errors.New("gzip is a packed mode option")
	}
	return nil
}

// Result is what Run measured. Rates are over the measured window
// (Duration minus Warmup); totals over the whole run.
type Result struct {
	Mode            string  `json:"mode"`
	Addr            string  `json:"addr"`
	Senders         int     `json:"senders"`
	Batch           int     `json:"batch,omitempty"`
	Gzip            bool    `json:"gzip,omitempty"`
	Ack             bool    `json:"ack"`
	Inflight        int     `json:"inflight,omitempty"`
	Async           bool    `json:"async,omitempty"`
	SubSecond       bool    `json:"sub_second,omitempty"`
	Lines           int     `json:"lines_per_container,omitempty"`
	Containers      int     `json:"containers,omitempty"`
	Seq             bool    `json:"seq,omitempty"`
	Rate            float64 `json:"rate_per_sender,omitempty"`
	RecordBytes     float64 `json:"record_bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
	MeasuredSeconds float64 `json:"measured_seconds"`

	// Printed is the lines the containers printed (docker); Lost those
	// their loggers did not send because Docker closed them (Lines) or
	// discarded them (async).
	Printed     int64   `json:"printed,omitempty"`
	Lost        int64   `json:"lost,omitempty"`
	Sent        int64   `json:"sent"`
	Acked       int64   `json:"acked"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Resent      int64   `json:"resent"`
	SentPerSec  float64 `json:"sent_per_sec"`
	AckedPerSec float64 `json:"acked_per_sec"`
	SentMBPerS  float64 `json:"sent_mb_per_sec"`
	// Latency is per request: from writing it to reading its ack (docker
	// async: from Post to the library's write callback).
	Latency    LatencyStats `json:"latency_ms"`
	LoadgenCPU float64      `json:"loadgen_cpu_seconds"`

	Maruta   *MarutaStats `json:"maruta,omitempty"`
	Timeline []Point      `json:"timeline,omitempty"`
}

// LatencyStats are in milliseconds.
type LatencyStats struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// MarutaStats are the target's numbers over the run and the drain. Counts
// are the change since the run started; -1 means not reported.
type MarutaStats struct {
	Accepted  int64 `json:"accepted"`
	Delivered int64 `json:"delivered"`
	Rejected  int64 `json:"rejected"`
	Dropped   int64 `json:"dropped"`
	// Drained reports that delivered caught up with accepted within Drain.
	Drained      bool    `json:"drained"`
	DrainSeconds float64 `json:"drain_seconds"`
	// CPUSeconds is from the start of the run to the end of the drain;
	// CPUPerMillion divides it by the records accepted (acked, sent).
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`
	// AckLatency and Fsync are maruta's own histograms over the run
	// (maruta_forward_ack_latency_seconds: from a request's arrival to
	// its ack; maruta_buffer_fsync_duration_seconds: one group-commit
	// round), in milliseconds; zero without metrics.
	AckLatency  HistStats `json:"ack_latency_ms"`
	Fsync       HistStats `json:"fsync_ms"`
	RSSMaxMB    float64   `json:"rss_max_mb"`
	RSSEndMB    float64   `json:"rss_end_mb"`
	BufferMaxMB float64   `json:"buffer_max_mb"`
	BufferEndMB float64   `json:"buffer_end_mb"`
	BlockedMax  float64   `json:"blocked_appends_max"`
}

// HistStats summarise a Prometheus histogram's change over the run.
type HistStats struct {
	Count float64 `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
}

// Point is one Interval of the run (rates per second over the interval).
type Point struct {
	T         float64 `json:"t"`
	Sent      float64 `json:"sent_per_sec"`
	Acked     float64 `json:"acked_per_sec"`
	Accepted  float64 `json:"accepted_per_sec,omitempty"`
	Delivered float64 `json:"delivered_per_sec,omitempty"`
	CPU       float64 `json:"cpu_percent,omitempty"`
	RSSMB     float64 `json:"rss_mb,omitempty"`
	BufferMB  float64 `json:"buffer_mb,omitempty"`
	Blocked   float64 `json:"blocked_appends,omitempty"`
	ErrorsRun int64   `json:"errors,omitempty"`
}

type sender interface {
	run(ctx context.Context, stopAt time.Time)
	histogram() *Histogram
}

func (s *packedSender) histogram() *Histogram { return &s.hist }
func (s *dockerSender) histogram() *Histogram { return &s.hist }

// tagFor expands the tag template for sender i.
func tagFor(tmpl string, i int, c Container) string {
	r := strings.NewReplacer("{i}", fmt.Sprint(i), "{name}", strings.TrimPrefix(c.Name, "/"), "{id}", c.ShortID())
	return r.Replace(tmpl)
}

// Run runs the benchmark described by cfg (defaults applied) and returns
// its result. ctx cancels the run early (the result covers what was done).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var target *Target
	var s0 Sample
	if cfg.Metrics != "" || cfg.PID > 0 {
		target = NewTarget(cfg.Metrics, cfg.PID)
		var err error
		if s0, err = target.Sample(ctx); err != nil {
			return nil, err
		}
	}

	// Containers and records.
	nctr := cfg.Containers
	if cfg.Mode == "docker" {
		nctr = cfg.Senders
	}
	next := &atomic.Int64{} // Lines mode: the next container to run
	ctrs := make([]Container, nctr)
	for i := range ctrs {
		ctrs[i] = NewContainer(cfg.Seed, i)
	}
	poolSize := max(4096, cfg.Batch)
	if cfg.Mode == "docker" {
		poolSize = 1024
	}
	pool := NewPool(cfg.Seed, poolSize, ctrs, cfg.LogSize)

	cnt := make([]*counters, cfg.Senders)
	senders := make([]sender, cfg.Senders)
	for i := range senders {
		cnt[i] = &counters{}
		c := ctrs[i%len(ctrs)]
		tag := tagFor(cfg.Tag, i, c)
		start := i * poolSize / cfg.Senders
		if cfg.Mode == "docker" {
			d := newDockerSender(&cfg, tag, c, pool, start, cnt[i])
			d.next = next
			senders[i] = d
		} else {
			senders[i] = newPackedSender(&cfg, tag, pool, start, cnt[i])
		}
	}
	total := func() (t totals) {
		for _, c := range cnt {
			t.add(c)
		}
		return t
	}

	cpu0 := selfCPU()
	start := time.Now()
	stopAt := start.Add(cfg.Duration)
	measureFrom := start.Add(cfg.Warmup)
	for _, s := range senders {
		if p, ok := s.(*packedSender); ok {
			p.measureFrom = measureFrom
		} else if d, ok := s.(*dockerSender); ok {
			d.measureFrom = measureFrom
		}
	}
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.run(ctx, stopAt) })
	}
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()

	recordBytes := pool.MeanSize()
	if cfg.Seq {
		recordBytes = seqRecordBytes(ctrs[0], cfg.Lines)
	}
	res := &Result{Mode: cfg.Mode, Addr: cfg.Addr, Senders: cfg.Senders, Ack: cfg.Ack, Async: cfg.Async,
		SubSecond: cfg.SubSecond, Rate: cfg.Rate, RecordBytes: recordBytes,
		DurationSeconds: cfg.Duration.Seconds(), MeasuredSeconds: (cfg.Duration - cfg.Warmup).Seconds()}
	if cfg.Mode == "packed" {
		res.Batch, res.Gzip, res.Inflight = cfg.Batch, cfg.Gzip, cfg.Inflight
	} else {
		res.Seq, res.Lines = cfg.Seq, cfg.Lines
		if cfg.Lines > 0 {
			res.Containers = cfg.Containers
			res.DurationSeconds = 0 // set at the end: the containers end the run
		}
	}
	var ms *MarutaStats
	if target != nil {
		ms = &MarutaStats{}
		res.Maruta = ms
	}
	observe := func(s Sample) {
		if ms == nil {
			return
		}
		ms.RSSMaxMB = max(ms.RSSMaxMB, s.RSS/1e6)
		ms.BufferMaxMB = max(ms.BufferMaxMB, s.BufferBytes/1e6)
		ms.BlockedMax = max(ms.BlockedMax, s.Blocked)
	}

	// Monitor: progress, timeline, the counters at the window's edges.
	var atWarmup, atStop totals
	warmupTimer := time.NewTimer(time.Until(measureFrom))
	stopTimer := time.NewTimer(time.Until(stopAt))
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	prev, prevT, prevS := total(), start, s0
	warmupSeen := cfg.Warmup == 0
	if warmupSeen {
		warmupTimer.Stop()
	}
	stopSeen := false
	point := func(now time.Time) {
		cur := total()
		dt := now.Sub(prevT).Seconds()
		if dt <= 0 {
			return
		}
		p := Point{T: now.Sub(start).Seconds(),
			Sent:      float64(cur.sent-prev.sent) / dt,
			Acked:     float64(cur.acked-prev.acked) / dt,
			ErrorsRun: cur.errors}
		if target != nil {
			if s, err := target.Sample(ctx); err == nil {
				observe(s)
				if s.Accepted >= 0 && prevS.Accepted >= 0 {
					p.Accepted = (s.Accepted - prevS.Accepted) / dt
				}
				if s.Delivered >= 0 && prevS.Delivered >= 0 {
					p.Delivered = (s.Delivered - prevS.Delivered) / dt
				}
				if s.CPU >= 0 && prevS.CPU >= 0 {
					p.CPU = 100 * (s.CPU - prevS.CPU) / dt
				}
				p.RSSMB, p.BufferMB, p.Blocked = s.RSS/1e6, max(s.BufferBytes, 0)/1e6, max(s.Blocked, 0)
				prevS = s
			}
		}
		res.Timeline = append(res.Timeline, p)
		if cfg.Progress != nil {
			line := fmt.Sprintf("%6.1fs  sent %s/s  acked %s/s", p.T, human(p.Sent), human(p.Acked))
			if target != nil {
				line += fmt.Sprintf("  accepted %s/s  delivered %s/s  cpu %3.0f%%  rss %.0f MB  buffer %.1f MB",
					human(p.Accepted), human(p.Delivered), p.CPU, p.RSSMB, p.BufferMB)
				if p.Blocked > 0 {
					line += fmt.Sprintf("  blocked %.0f", p.Blocked)
				}
			}
			if p.ErrorsRun > 0 {
				line += fmt.Sprintf("  errors %d", p.ErrorsRun)
			}
			fmt.Fprintln(cfg.Progress, line)
		}
		prev, prevT = cur, now
	}
loop:
	for {
		select {
		case <-warmupTimer.C:
			atWarmup, warmupSeen = total(), true
		case <-stopTimer.C:
			atStop, stopSeen = total(), true
			if !warmupSeen {
				atWarmup, warmupSeen = total(), true
			}
		case now := <-tick.C:
			point(now)
		case <-sendersDone:
			break loop
		}
	}
	if !stopSeen { // cancelled early
		atStop = total()
		if !warmupSeen {
			atWarmup = atStop
		}
		res.MeasuredSeconds = max(time.Since(measureFrom).Seconds(), 1e-9)
	}
	end := total()
	if cfg.Lines > 0 {
		res.DurationSeconds = time.Since(start).Seconds()
	}
	res.Printed, res.Lost = end.printed, end.lost
	res.Sent, res.Acked = end.sent, end.acked
	res.Requests, res.Errors, res.Resent = end.requests, end.errors, end.resent
	w := res.MeasuredSeconds
	res.SentPerSec = float64(atStop.sent-atWarmup.sent) / w
	res.AckedPerSec = float64(atStop.acked-atWarmup.acked) / w
	res.SentMBPerS = float64(atStop.bytes-atWarmup.bytes) / w / 1e6
	var h Histogram
	for _, s := range senders {
		h.Merge(s.histogram())
	}
	ms2 := func(d time.Duration) float64 { return float64(d) / 1e6 }
	res.Latency = LatencyStats{Count: h.Count(), Mean: ms2(h.Mean()), P50: ms2(h.Quantile(0.5)),
		P90: ms2(h.Quantile(0.9)), P99: ms2(h.Quantile(0.99)), P999: ms2(h.Quantile(0.999)), Max: ms2(h.Max())}

	if target != nil {
		drainStart := time.Now()
		sEnd, err := target.Sample(ctx)
		for err == nil && sEnd.Delivered >= 0 && ctx.Err() == nil {
			observe(sEnd)
			if sEnd.Delivered-s0.Delivered >= sEnd.Accepted-s0.Accepted {
				ms.Drained = true
				break
			}
			if time.Since(drainStart) > cfg.Drain {
				break
			}
			if cfg.Progress != nil && time.Since(prevT) >= cfg.Interval {
				point(time.Now())
			}
			time.Sleep(50 * time.Millisecond)
			sEnd, err = target.Sample(ctx)
		}
		if err != nil {
			return res, fmt.Errorf("read maruta at the end of the run: %w", err)
		}
		observe(sEnd)
		ms.DrainSeconds = time.Since(drainStart).Seconds()
		delta := func(a, b float64) int64 {
			if a < 0 || b < 0 {
				return -1
			}
			return int64(a - b)
		}
		ms.Accepted = delta(sEnd.Accepted, s0.Accepted)
		ms.Delivered = delta(sEnd.Delivered, s0.Delivered)
		ms.Rejected = delta(sEnd.Rejected, s0.Rejected)
		ms.Dropped = delta(sEnd.Dropped, s0.Dropped)
		if sEnd.CPU >= 0 && s0.CPU >= 0 {
			ms.CPUSeconds = sEnd.CPU - s0.CPU
			n := float64(ms.Accepted)
			if n <= 0 {
				n = float64(res.Acked)
				if !cfg.Ack {
					n = float64(res.Sent)
				}
			}
			if n > 0 {
				ms.CPUPerMillion = ms.CPUSeconds / n * 1e6
			}
		}
		ms.AckLatency = histStats(s0.AckLatency, sEnd.AckLatency)
		ms.Fsync = histStats(s0.Fsync, sEnd.Fsync)
		ms.RSSEndMB = sEnd.RSS / 1e6
		ms.BufferEndMB = max(sEnd.BufferBytes, 0) / 1e6
	}
	res.LoadgenCPU = selfCPU() - cpu0
	return res, nil
}

// human formats a rate: 712k, 1.25M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
