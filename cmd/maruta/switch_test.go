package main

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// blockingConsumer holds each Consume call until release is closed.
type blockingConsumer struct {
	entered chan struct{}
	release chan struct{}
}

func (c *blockingConsumer) Consume(ctx context.Context, b *event.Batch) error {
	c.entered <- struct{}{}
	<-c.release
	return nil
}

// TestSwitchWaitIdle: a reload waits for the calls in flight on the target
// it swapped out, is woken as the last one returns (not by a timer), and
// gives up after its timeout when a call does not return.
func TestSwitchWaitIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &blockingConsumer{entered: make(chan struct{}, 2), release: make(chan struct{})}
		s := newSwitch(c)
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- s.Consume(t.Context(), &event.Batch{}) }()
		}
		<-c.entered
		<-c.entered
		prev := s.swap(nil)
		if err := s.Consume(t.Context(), &event.Batch{}); err != errSwapped {
			t.Fatalf("Consume after swap(nil) = %v, want errSwapped", err)
		}
		start := time.Now()
		idle := make(chan bool)
		go func() { idle <- prev.waitIdle(time.Hour) }()
		synctest.Wait()
		select {
		case <-idle:
			t.Fatal("waitIdle returned with two calls in flight")
		default:
		}
		close(c.release)
		if !<-idle {
			t.Fatal("waitIdle timed out")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("waitIdle returned %v after the last call left, want at once", d)
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}

		// A call that never returns: waitIdle gives up at its timeout.
		c2 := &blockingConsumer{entered: make(chan struct{}, 1), release: make(chan struct{})}
		s2 := newSwitch(c2)
		go func() { errs <- s2.Consume(t.Context(), &event.Batch{}) }()
		<-c2.entered
		start = time.Now()
		if s2.swap(nil).waitIdle(10 * time.Second) {
			t.Error("waitIdle reported idle with a call in flight")
		}
		if d := time.Since(start); d != 10*time.Second {
			t.Errorf("waitIdle gave up after %v, want 10s", d)
		}
		close(c2.release)
		<-errs
		// A switch without a target is idle.
		if !s2.swap(nil).waitIdle(time.Second) {
			t.Error("waitIdle on no target = false")
		}
	})
}
