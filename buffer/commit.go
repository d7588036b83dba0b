package buffer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// committer group-commits fsyncs (FORMAT.md, "Write path and durability").
//
// Appenders register each write with register, which numbers it and marks its
// chunk dirty. A write nobody waits for is made durable by a background
// round runner (kick starts one when none runs; it runs rounds back to back
// while writes are registered and ends when it has taken them all). A waiter
// (wait, WaitCommitted) whose write no round has taken yet may become a
// round runner itself (at most `depth` rounds run at once): the round takes
// the highest write number and the dirty chunks, writes their pending frames
// and fdatasyncs them (several chunk files in parallel), and publishes the
// number as synced; every waiter whose write it covers returns together.
// Rounds publish in the order they were taken, so "synced" always means
// "everything up to here". ctx cancels a wait.
//
// One round at a time: two rounds in flight fdatasync the same files, which
// ext4 serializes, and split the appenders into two half-size rounds
// (measured with 64 appenders: 26-29 appends per round and 90k-115k
// single-event appends/s with two, 62 per round and 134k-211k/s with one).
type committer struct {
	mu       sync.Mutex
	seq      uint64 // last registered write
	taken    uint64 // last write taken by a round
	synced   uint64 // every write <= synced has been through a round
	dirty    []*chunk
	wake     chan struct{} // closed whenever a round publishes
	lastDone chan struct{} // closed when the last taken round has published
	token    chan struct{} // capacity depth: the round runners
	failures []failedRound
	observe  func(time.Duration)
	failed   func(err error, writes uint64)
	bg       bool // a background round runner is running

	// A round first waits for the crowd of the last one: until
	// gatherAt writes are registered (register closes gathered then) or
	// its time is up. Guarded by mu; gatherT is used by the round runner.
	gatherAt uint64
	gathered chan struct{}
	gatherT  *time.Timer

	// lastRound is how many writes the last round covered. The next
	// round waits (briefly, see round) until as many are registered, so
	// that appenders woken by a round, who come back at once with their
	// next write, share one round instead of trickling into two.
	lastRound atomic.Uint64
	// lastSync is the duration of the last round's syncs, in ns.
	lastSync atomic.Int64
	// lastStart is when the last round took its writes, in Unix ns.
	lastStart atomic.Int64
}

// depth is how many commit rounds may sync at once.
const depth = 1

// maxGather bounds how long a round waits for the crowd of the last one
// (and half the last round's fsync bounds it too). Acked clients that send
// their next request when the ack comes (Docker with fluentd-request-ack)
// come back as a crowd within a fraction of an fsync; a round that starts
// before they are all in splits them into two rounds, and a request then
// waits for about two fsyncs instead of one.
const maxGather = 2 * time.Millisecond

// bgInterval is the shortest time between the starts of two rounds that
// nobody waits for. Writes without a waiter (Forward requests without a
// chunk option) reach the disk at most bgInterval plus one round after
// they were appended (FORMAT.md); meanwhile they gather, so that a
// stream of Docker lines costs about 1/bgInterval fdatasyncs per second
// instead of one round after another.
const bgInterval = 10 * time.Millisecond

type failedRound struct {
	lo, hi uint64 // writes lo..hi were in the round
	err    error
}

// newCommitter returns a committer that reports each round's sync duration
// to observe and each failed round (its error and how many writes it
// covered) to failed; either may be nil.
func newCommitter(observe func(time.Duration), failed func(err error, writes uint64)) *committer {
	done := make(chan struct{})
	close(done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &committer{
		wake:     make(chan struct{}),
		lastDone: done,
		token:    make(chan struct{}, depth),
		observe:  observe,
		failed:   failed,
		gatherT:  t,
	}
}

// register records a write to c (already done, or pending in c) and returns
// its number.
func (g *committer) register(c *chunk) uint64 {
	g.mu.Lock()
	g.seq++
	s := g.seq
	if !c.dirty {
		c.dirty = true
		g.dirty = append(g.dirty, c)
	}
	if g.gathered != nil && s >= g.gatherAt {
		close(g.gathered)
		g.gathered = nil
	}
	g.mu.Unlock()
	return s
}

// kick makes sure a round will cover every write registered so far, with
// or without a waiter: it starts the background round runner unless it runs.
func (g *committer) kick() {
	g.mu.Lock()
	if g.bg || g.taken >= g.seq {
		g.mu.Unlock()
		return
	}
	g.bg = true
	g.mu.Unlock()
	go g.background()
}

// background runs rounds until every registered write is taken, starting
// one at most every bgInterval: nobody waits for these writes (a waiter
// does not wait for the background runner; it runs a round itself).
func (g *committer) background() {
	for {
		if d := bgInterval - time.Since(time.Unix(0, g.lastStart.Load())); d > 0 {
			time.Sleep(d)
		}
		g.token <- struct{}{}
		g.round()
		<-g.token
		g.mu.Lock()
		if g.taken >= g.seq {
			g.bg = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
}

// WaitCommitted implements event.CommitLog: it returns once writes lo..hi
// are durable, with the error of a failed round that covered any of them.
func (g *committer) WaitCommitted(ctx context.Context, lo, hi uint64) error {
	return g.waitRange(ctx, lo, hi)
}

// wait returns once write s is durable, with the error of the round that
// covered it, or ctx's error.
func (g *committer) wait(ctx context.Context, s uint64) error { return g.waitRange(ctx, s, s) }

// waitRange returns once writes lo..s are durable, with the error of a
// round that covered any of them, or ctx's error.
func (g *committer) waitRange(ctx context.Context, lo, s uint64) error {
	for {
		g.mu.Lock()
		if g.synced >= s {
			err := g.failureLocked(lo, s)
			g.mu.Unlock()
			return err
		}
		wake := g.wake
		taken := g.taken >= s
		g.mu.Unlock()
		var token chan struct{}
		if !taken {
			token = g.token // nil (never ready) once a round has our write
		}
		select {
		case token <- struct{}{}:
			g.round()
			<-g.token
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// syncAll runs a round covering every write registered so far (fsync:
// interval) and waits for it.
func (g *committer) syncAll(ctx context.Context) error {
	g.mu.Lock()
	s := g.seq
	g.mu.Unlock()
	return g.wait(ctx, s)
}

// round takes the writes registered so far and syncs their chunks. The
// caller holds a token.
func (g *committer) round() {
	if want := g.lastRound.Load(); want > 1 {
		// Wait for the crowd of the last round, at most half an fsync, so
		// that a drop in load costs little.
		limit := min(maxGather, time.Duration(g.lastSync.Load())/2)
		g.mu.Lock()
		var ch chan struct{}
		if g.seq-g.taken < want && limit > 0 {
			ch = make(chan struct{})
			g.gatherAt, g.gathered = g.taken+want, ch
		}
		g.mu.Unlock()
		if ch != nil {
			g.gatherT.Reset(limit)
			select {
			case <-ch:
				if !g.gatherT.Stop() {
					<-g.gatherT.C
				}
			case <-g.gatherT.C:
			}
			g.mu.Lock()
			if g.gathered == ch {
				g.gathered = nil
			}
			g.mu.Unlock()
		}
	}
	g.mu.Lock()
	lo, hi := g.taken+1, g.seq
	if hi < lo {
		g.mu.Unlock()
		return
	}
	g.taken = hi
	g.lastStart.Store(time.Now().UnixNano())
	files := g.dirty
	g.dirty = nil
	for _, c := range files {
		c.dirty = false
	}
	prev := g.lastDone
	done := make(chan struct{})
	g.lastDone = done
	g.mu.Unlock()

	var firstErr error
	start := time.Now()
	if len(files) == 1 {
		firstErr = files[0].sync()
	} else if len(files) > 1 {
		// Different files' flushes overlap in the kernel (one journal
		// commit can cover them all).
		errs := make([]error, len(files))
		var wg sync.WaitGroup
		for i, c := range files[1:] {
			wg.Go(func() { errs[i+1] = c.sync() })
		}
		errs[0] = files[0].sync()
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				firstErr = err
				break
			}
		}
	}
	if len(files) > 0 {
		d := time.Since(start)
		g.lastSync.Store(int64(d))
		if g.observe != nil {
			g.observe(d)
		}
	}
	<-prev // publish in order
	g.mu.Lock()
	if firstErr != nil {
		g.failures = append(g.failures, failedRound{lo, hi, firstErr})
		if len(g.failures) > 64 {
			g.failures = g.failures[len(g.failures)-64:]
		}
	}
	g.synced = hi
	// The crowd to wait for: this round's writes, or, when fewer came, a
	// quarter less than last time (a crowd split by an early round is
	// gathered again; a smaller load is followed within a few rounds).
	n, last := hi-lo+1, g.lastRound.Load()
	g.lastRound.Store(max(n, last-(last+3)/4))
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
	close(done)
	if firstErr != nil && g.failed != nil {
		g.failed(firstErr, hi-lo+1)
	}
}

// failureLocked returns the error of a failed round that covered any of
// the writes lo..hi.
func (g *committer) failureLocked(lo, hi uint64) error {
	for i := len(g.failures) - 1; i >= 0; i-- {
		if f := g.failures[i]; f.lo <= hi && lo <= f.hi {
			return f.err
		}
	}
	return nil
}
