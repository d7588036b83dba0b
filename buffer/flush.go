package buffer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
)

// Run runs the flush workers (flush_thread_count), the seal timers, the
// fsync interval and the folder poll that picks up requeued chunks. It
// blocks until ctx is done, then waits for the workers (an in-flight
// Sink.Write sees the cancelled ctx and its chunk stays queued on disk),
// seals the open chunks, releases the folder and returns nil. Run may be
// called once.
func (b *Buffer) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	b.mu.Lock()
	if b.running || b.closed {
		b.mu.Unlock()
		return fmt.Errorf("run buffer %s: already running or closed", b.name)
	}
	b.running, b.stopRun = true, stop
	b.mu.Unlock()

	var wg sync.WaitGroup
	for i := 0; i < b.cfg.FlushThreadCount; i++ {
		wg.Go(func() { b.worker(ctx) })
	}
	wg.Go(func() { b.sealer(ctx) })
	wg.Go(func() { b.poller(ctx) })
	if b.mode == config.FsyncInterval {
		wg.Go(func() { b.intervalSync(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	b.shutdown()
	b.mu.Lock()
	b.running = false
	b.mu.Unlock()
	return nil
}

// Drain seals every open chunk and waits until every chunk is delivered or
// dead-lettered, or ctx is done (what is left stays on disk for the next
// start). Consume fails with ErrClosed once Drain has started. Run must be
// running for chunks to be delivered; Drain returns early if Run returns.
func (b *Buffer) Drain(ctx context.Context) error {
	b.stopAppends(false)
	for {
		b.mu.Lock()
		done := len(b.queue) == 0 && b.inflight == 0 && b.sealing == 0 && len(b.open) == 0
		ch := b.changed
		left := len(b.queue) + b.inflight
		closed := b.closed
		b.mu.Unlock()
		if done {
			return nil
		}
		if closed {
			return fmt.Errorf("drain buffer %s: %d chunks left on disk: %w", b.name, left, ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("drain buffer %s: %d chunks left on disk: %w", b.name, left, ctx.Err())
		}
	}
}

func (b *Buffer) worker(ctx context.Context) {
	for {
		c := b.next(ctx)
		if c == nil {
			return
		}
		b.deliver(ctx, c)
	}
}

// next waits for a chunk that is due and marks it in flight.
func (b *Buffer) next(ctx context.Context) *chunk {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		b.mu.Lock()
		var wait time.Duration = -1
		if len(b.queue) > 0 {
			top := b.queue[0]
			if d := top.notBefore.Sub(b.now()); d <= 0 {
				heap.Pop(&b.queue)
				top.state = stateInflight
				b.inflight++
				b.mu.Unlock()
				return top
			} else {
				wait = d
			}
		}
		ch := b.changed
		b.mu.Unlock()
		var tc <-chan time.Time
		if wait >= 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		case <-tc:
		}
	}
}

// deliver hands c to the sink and acts on the result.
func (b *Buffer) deliver(ctx context.Context, c *chunk) {
	start := time.Now()
	err := b.sink.Write(ctx, c)
	d := time.Since(start).Seconds()
	now := b.now()
	if err == nil {
		b.m.flush.WithLabelValues("success").Observe(d)
		b.keepMarks(c)
		p := filepath.Join(b.dir, c.name)
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			b.log.Error("delivered chunk but cannot remove its file; it will be delivered again after a restart",
				"chunk", c.id, "err", rerr)
		}
		events, size := c.events.Load(), c.size.Load()
		b.m.delivered.Inc()
		b.m.deliveredEvents.Add(float64(events))
		b.m.deliveredBytes.Add(float64(size))
		b.mu.Lock()
		b.inflight--
		b.lastSuccess = now
		b.forgetLocked(c)
		b.mu.Unlock()
		b.log.Debug("delivered chunk", "chunk", c.id, "events", events, "bytes", size, "seconds", d)
		return
	}
	if ctx.Err() != nil {
		// Shutting down: the chunk stays queued on disk, attempt not counted.
		b.m.flush.WithLabelValues("cancelled").Observe(d)
		b.mu.Lock()
		b.inflight--
		b.enqueueBackLocked(c)
		b.mu.Unlock()
		return
	}
	b.noteError(err)
	var reason string
	switch {
	case errors.Is(err, errCorrupt):
		reason = "corrupt"
	case delivery.IsPermanent(err):
		reason = "permanent"
	}
	// Status reads attempts under b.mu while this worker owns the chunk.
	b.mu.Lock()
	c.attempts++
	b.mu.Unlock()
	if c.attempts == 1 {
		c.firstFail = now
	}
	cfg := &b.cfg
	if reason == "" && !cfg.RetryForever {
		if cfg.RetryMaxTimes > 0 && c.attempts > cfg.RetryMaxTimes ||
			cfg.RetryTimeout > 0 && now.Sub(c.firstFail) >= cfg.RetryTimeout.D() {
			reason = "retries_exhausted"
		}
	}
	if reason != "" {
		b.m.flush.WithLabelValues(reason).Observe(d)
		b.deadLetter(c, reason, err)
		return
	}
	b.m.flush.WithLabelValues("retry").Observe(d)
	b.m.retries.Inc()
	wait := b.backoff(c.attempts)
	next := now.Add(wait)
	if !cfg.RetryForever && cfg.RetryTimeout > 0 {
		// One last attempt at the timeout rather than none.
		if last := c.firstFail.Add(cfg.RetryTimeout.D()); next.After(last) {
			next = last
		}
	}
	b.log.Warn("chunk delivery failed; will retry", "chunk", c.id, "attempt", c.attempts,
		"retry_in", next.Sub(now).Round(time.Millisecond), "err", err)
	b.mu.Lock()
	b.inflight--
	c.lastErr = err.Error()
	c.notBefore = next
	b.enqueueBackLocked(c)
	b.mu.Unlock()
}

// keepMarks hands the dedup marks of c, which is about to leave the
// folder, to the dedup record, so its requests stay known for the window
// (FORMAT.md, "The dedup record"). A failure is logged and counted by the
// record; the chunk goes all the same.
func (b *Buffer) keepMarks(c *chunk) {
	if b.dedup == nil || !c.hasMarks() {
		return
	}
	path := filepath.Join(b.dir, c.name)
	err := b.dedup.Keep(func(fn func(m *dedup.Mark)) error {
		return eachMark(path, c.hdr.Version, c.dataOff, c.size.Load(), fn)
	})
	if err != nil {
		b.log.Warn("dedup record: the chunk's marks are not kept; a resend of its requests after a restart may be stored again",
			"chunk", c.id, "err", err)
	}
}

func (b *Buffer) enqueueBackLocked(c *chunk) {
	c.state = stateQueued
	heap.Push(&b.queue, c)
	b.notifyLocked()
}

// backoff returns the wait before retry number n (1-based): retry_wait ×
// 2^(n-1), capped at retry_max_interval, times a random factor in
// [0.75, 1.25) when retry_randomize is on (still capped).
func (b *Buffer) backoff(n int) time.Duration {
	w := b.cfg.RetryWait.D()
	if w <= 0 {
		w = time.Second
	}
	maxW := b.cfg.RetryMaxInterval.D()
	if maxW < w {
		maxW = w
	}
	for i := 1; i < n && w < maxW; i++ {
		w *= 2
	}
	w = min(w, maxW)
	if b.cfg.RetryRandomize == nil || *b.cfg.RetryRandomize {
		w = time.Duration(float64(w) * (0.75 + rand.Float64()/2))
		w = min(w, maxW)
	}
	return w
}

// sealer seals open chunks when their flush_interval or time slice (plus
// timekey_wait) is over.
func (b *Buffer) sealer(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := b.sealDue()
		wait := time.Second
		if !next.IsZero() {
			wait = min(max(next.Sub(b.now()), time.Millisecond), time.Second)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kick:
		}
	}
}

// sealDue seals every open chunk whose deadline passed and returns the
// earliest deadline of the rest (zero if none).
func (b *Buffer) sealDue() time.Time {
	now := b.now()
	var due []*chunk
	var next time.Time
	b.mu.Lock()
	for _, c := range b.open {
		select {
		case <-c.ready:
		default:
			continue // still being created
		}
		if !c.deadline.After(now) {
			if b.takeOpenLocked(c) {
				due = append(due, c)
			}
		} else if next.IsZero() || c.deadline.Before(next) {
			next = c.deadline
		}
	}
	b.mu.Unlock()
	for _, c := range due {
		b.seal(c)
	}
	return next
}

func (b *Buffer) poller(ctx context.Context) {
	t := time.NewTicker(b.rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.adoptNew()
		}
	}
}

func (b *Buffer) intervalSync(ctx context.Context) {
	t := time.NewTicker(b.cfg.FsyncInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// A last round so a clean shutdown loses nothing.
			b.commit.syncAll(context.Background())
			return
		case <-t.C:
			if err := b.commit.syncAll(ctx); err != nil && ctx.Err() == nil {
				b.noteError(err)
				b.log.Error("periodic fsync failed", "err", err)
			}
		}
	}
}
