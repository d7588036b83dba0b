package buffer

import (
	"context"
	"sync"
	"time"
)

// committer group-commits fsyncs (FORMAT.md, "Write path and durability").
//
// Appenders register each write with register, which numbers it and marks its
// chunk dirty, then call wait. One waiter at a time holds the token and runs
// a round: it takes the highest write number and the dirty chunks, syncs them,
// and publishes the number as synced; every waiter whose write it covers
// returns together. Writes registered during a round wait for the next one,
// run by one of them. No goroutine is needed and ctx cancels a wait.
type committer struct {
	mu       sync.Mutex
	seq      uint64 // last registered write
	synced   uint64 // every write <= synced has been through a round
	dirty    []*chunk
	spare    []*chunk
	wake     chan struct{} // closed at the end of every round
	token    chan struct{} // capacity 1: the round runner
	failures []failedRound
	observe  func(time.Duration)
}

type failedRound struct {
	lo, hi uint64 // writes lo..hi were in the round
	err    error
}

func newCommitter(observe func(time.Duration)) *committer {
	return &committer{
		wake:    make(chan struct{}),
		token:   make(chan struct{}, 1),
		observe: observe,
	}
}

func (g *committer) lock()   { g.mu.Lock() }
func (g *committer) unlock() { g.mu.Unlock() }

// register records a write to c (already done) and returns its number.
func (g *committer) register(c *chunk) uint64 {
	g.lock()
	g.seq++
	s := g.seq
	if !c.dirty {
		c.dirty = true
		g.dirty = append(g.dirty, c)
	}
	g.unlock()
	return s
}

// wait returns once write s is durable, with the error of the round that
// covered it, or ctx's error.
func (g *committer) wait(ctx context.Context, s uint64) error {
	for {
		g.lock()
		if g.synced >= s {
			err := g.failureLocked(s)
			g.unlock()
			return err
		}
		wake := g.wake
		g.unlock()
		select {
		case g.token <- struct{}{}:
			g.round()
			<-g.token
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// syncAll runs one round covering every write registered so far (fsync:
// interval), waiting for a running round first.
func (g *committer) syncAll(ctx context.Context) error {
	g.lock()
	s := g.seq
	g.unlock()
	return g.wait(ctx, s)
}

// round syncs every dirty chunk. The caller holds the token.
func (g *committer) round() {
	g.lock()
	lo, hi := g.synced+1, g.seq
	files := g.dirty
	g.dirty = g.spare[:0]
	for _, c := range files {
		c.dirty = false
	}
	g.unlock()
	if hi < lo {
		return
	}
	var firstErr error
	start := time.Now()
	for _, c := range files {
		if err := c.sync(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if g.observe != nil && len(files) > 0 {
		g.observe(time.Since(start))
	}
	clear(files)
	g.lock()
	g.spare = files[:0]
	if firstErr != nil {
		g.failures = append(g.failures, failedRound{lo, hi, firstErr})
		if len(g.failures) > 64 {
			g.failures = g.failures[len(g.failures)-64:]
		}
	}
	g.synced = hi
	close(g.wake)
	g.wake = make(chan struct{})
	g.unlock()
}

func (g *committer) failureLocked(s uint64) error {
	for i := len(g.failures) - 1; i >= 0; i-- {
		if f := g.failures[i]; f.lo <= s && s <= f.hi {
			return f.err
		}
	}
	return nil
}
