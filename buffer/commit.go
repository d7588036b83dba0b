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
// round runner (kick starts one when none runs; it runs rounds while writes
// are registered and ends when it has taken them all). A waiter (wait,
// WaitCommitted) whose write no round has taken yet may become a round
// runner itself: the round takes every write registered so far (the
// numbers after the last round's, up to the newest) and the dirty chunks,
// writes their pending frames and fdatasyncs them (several chunk files in
// parallel); every waiter whose writes it covers returns when it ends. A
// waiter whose writes span several rounds returns when all of them ended;
// "synced" is the prefix of writes that every round up to it has ended
// for. ctx cancels a wait.
//
// One main round runs at a time (token): it first gathers the crowd of the
// last one (see run). While rounds are in flight, a waiter may run a side
// round (side, up to depth-1 at once) that starts at once, without
// gathering, but only when none of the dirty chunks is in a round in
// flight: a chunk file is in one round at a time. Two rounds on the same
// files would fdatasync them twice, which ext4 serializes, and split the
// appenders into two half-size rounds (measured with 64 appenders on one
// file: 26-29 appends per round and 90k-115k single-event appends/s with
// two, 62 per round and 134k-211k/s with one); so writes to one file see
// one round after another, as before. Rounds on different files overlap and
// end independently: a request to a file no round syncs (a Docker
// container with fluentd-request-ack: one request in flight per
// connection, one chunk per tag) that arrives while a round syncs other
// files starts its own at once instead of waiting for that round to end
// and then for its own, which cost it the rest of the round in flight.
type committer struct {
	mu       sync.Mutex
	seq      uint64 // last registered write
	taken    uint64 // last write taken by a round
	synced   uint64 // every write <= synced has been through a round that ended
	dirty    []*chunk
	inflight []*round      // rounds that took writes and have not all ended, oldest first
	took     chan struct{} // closed whenever a round takes writes
	token    chan struct{} // capacity 1: the main round runner
	side     chan struct{} // capacity depth-1: side round runners
	failures []failedRound
	observe  func(time.Duration)
	failed   func(err error, writes uint64)
	bg       bool // a background round runner is running

	// A main round first waits for the crowd of the last one: until
	// gatherAt writes are registered (register closes gathered then) or
	// its time is up. Guarded by mu; gatherT is used by the main round
	// runner.
	gatherAt uint64
	gathered chan struct{}
	gatherT  *time.Timer

	// lastRound is how many writes the last round covered. The next
	// round waits (briefly, see run) until as many are registered, so
	// that appenders woken by a round, who come back at once with their
	// next write, share one round instead of trickling into two.
	lastRound atomic.Uint64
	// lastSync is the duration of the last round's syncs, in ns.
	lastSync atomic.Int64
	// lastStart is when the last round took its writes, in Unix ns.
	lastStart atomic.Int64
}

// round is one commit round: writes lo..hi and the chunks they went to.
type round struct {
	lo, hi uint64
	files  []*chunk
	side   bool          // a side round (see committer)
	ended  bool          // guarded by committer.mu
	done   chan struct{} // closed when the round has ended
}

// depth is how many commit rounds may sync at once (on different chunk
// files, see committer): one main round and depth-1 side rounds.
const depth = 16

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
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &committer{
		gatherT: t,
		took:    make(chan struct{}),
		token:   make(chan struct{}, 1),
		side:    make(chan struct{}, depth-1),
		observe: observe,
		failed:  failed,
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
		busy := g.run(false)
		<-g.token
		if busy != nil {
			<-busy // a round in flight syncs a file of ours
		}
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
		if g.taken >= s {
			// Every write is in a round: wait for the first that has not
			// ended of those that cover lo..s.
			var pending chan struct{}
			for _, r := range g.inflight {
				if r.hi >= lo && r.lo <= s && !r.ended {
					pending = r.done
					break
				}
			}
			if pending == nil {
				err := g.failureLocked(lo, s)
				g.mu.Unlock()
				return err
			}
			g.mu.Unlock()
			select {
			case <-pending:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		took := g.took
		var side chan struct{}
		if len(g.inflight) > 0 {
			side = g.side // nil (never ready) when no round is in flight
		}
		g.mu.Unlock()
		var busy <-chan struct{}
		select {
		case g.token <- struct{}{}:
			busy = g.run(false)
			<-g.token
		case side <- struct{}{}:
			busy = g.run(true)
			<-g.side
		case <-took:
		case <-ctx.Done():
			return ctx.Err()
		}
		if busy != nil {
			select { // a round in flight syncs a file of ours
			case <-busy:
			case <-ctx.Done():
				return ctx.Err()
			}
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

// run takes the writes registered so far and syncs their chunks: one
// round, a main round (the caller holds token; it gathers first) or a side
// round (the caller holds a side token). When a round in flight syncs one
// of the dirty chunks, run takes nothing and returns that round's done
// channel (wait for it, then try again); otherwise nil.
func (g *committer) run(side bool) (busy <-chan struct{}) {
	g.mu.Lock()
	if side && len(g.inflight) == 0 {
		g.mu.Unlock()
		return nil // the rounds ended meanwhile: the next is a main round
	}
	if busy := g.busyLocked(); busy != nil {
		g.mu.Unlock()
		return busy
	}
	g.mu.Unlock()
	if want := g.lastRound.Load(); want > 1 && !side {
		g.gather(want)
	}
	g.mu.Lock()
	lo, hi := g.taken+1, g.seq
	if hi < lo {
		g.mu.Unlock()
		return nil
	}
	if busy := g.busyLocked(); busy != nil {
		g.mu.Unlock()
		return busy
	}
	r := &round{lo: lo, hi: hi, files: g.dirty, side: side, done: make(chan struct{})}
	g.taken = hi
	g.lastStart.Store(time.Now().UnixNano())
	g.dirty = nil
	for _, c := range r.files {
		c.dirty = false
		c.syncing = r
	}
	g.inflight = append(g.inflight, r)
	close(g.took)
	g.took = make(chan struct{})
	g.mu.Unlock()

	err := g.syncFiles(r.files)
	g.end(r, err)
	return nil
}

// gather waits until want writes are registered since the last round took
// its writes, or at most half the last fsync (at most maxGather), so that a
// drop in load costs little.
func (g *committer) gather(want uint64) {
	limit := min(maxGather, time.Duration(g.lastSync.Load())/2)
	if limit <= 0 {
		return
	}
	g.mu.Lock()
	if g.seq-g.taken >= want {
		g.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	g.gatherAt, g.gathered = g.taken+want, ch
	g.mu.Unlock()
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

// syncFiles writes the pending frames of files and fdatasyncs them, all
// at once, and returns the first error.
func (g *committer) syncFiles(files []*chunk) error {
	if len(files) == 0 {
		return nil
	}
	start := time.Now()
	var firstErr error
	if len(files) == 1 {
		firstErr = files[0].sync()
	} else {
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
	d := time.Since(start)
	g.lastSync.Store(int64(d))
	if g.observe != nil {
		g.observe(d)
	}
	return firstErr
}

// end records that r has synced (with err) and releases its waiters; the
// synced prefix moves past every round that has ended from the oldest on.
func (g *committer) end(r *round, err error) {
	g.mu.Lock()
	r.ended = true
	for _, c := range r.files {
		if c.syncing == r {
			c.syncing = nil
		}
	}
	if err != nil {
		g.failures = append(g.failures, failedRound{r.lo, r.hi, err})
		if len(g.failures) > 64 {
			g.failures = g.failures[len(g.failures)-64:]
		}
	}
	n := 0
	for n < len(g.inflight) && g.inflight[n].ended {
		g.synced = g.inflight[n].hi
		n++
	}
	if n > 0 {
		clear(g.inflight[:n])
		g.inflight = append(g.inflight[:0], g.inflight[n:]...)
	}
	// The crowd the next main round waits for: this main round's writes,
	// or, when fewer came, a quarter less than last time (a crowd split by
	// an early round is gathered again; a smaller load is followed within
	// a few rounds). Side rounds take who came late.
	if !r.side {
		w, last := r.hi-r.lo+1, g.lastRound.Load()
		g.lastRound.Store(max(w, last-(last+3)/4))
	}
	close(r.done)
	g.mu.Unlock()
	if err != nil && g.failed != nil {
		g.failed(err, r.hi-r.lo+1)
	}
}

// busyLocked returns the done channel of a round in flight that syncs a
// chunk with writes no round has taken, or nil. The caller holds mu.
func (g *committer) busyLocked() chan struct{} {
	if len(g.inflight) == 0 {
		return nil
	}
	for _, c := range g.dirty {
		if c.syncing != nil {
			return c.syncing.done
		}
	}
	return nil
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
