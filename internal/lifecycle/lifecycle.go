package lifecycle

import (
	"context"
	"errors"
)

// Component is one running part of the graph. Its package's New builds it
// and acquires what it needs (binds listeners, locks and recovers folders)
// without starting a goroutine; then:
//
//   - Run does the component's work until ctx is done or Close is called,
//     stops, releases what New acquired and returns: nil when it stopped as
//     asked, an error when it could not go on. A source, told to stop by its
//     ctx, first drains as Drain does. Run may also return nil by itself once
//     a Drain has finished (a source with no connection left). Run is called
//     at most once.
//   - Drain stops taking new input and hands on everything the component
//     holds to the next stage: a source what its clients already sent (and
//     their acks), the router the partial lines it is joining, a buffer every
//     chunk (sealed and delivered). It returns nil once all is handed on, or
//     an error wrapping ctx's when ctx ends first; what is left then is kept
//     only where the component promises it (a buffer's chunks stay on disk).
//     Run must be running for Drain to make progress. Safe to call more than
//     once.
//   - Close stops at once, handing on nothing more; Run returns promptly
//     after it. For a component whose Run never started it releases what New
//     acquired. Safe to call more than once, before, during or after Run.
//
// Consume (event.Consumer), where a component has it, is safe to call
// concurrently with all three.
type Component interface {
	Run(ctx context.Context) error
	Drain(ctx context.Context) error
	Close() error
}

// Runner runs one Component's Run on its own goroutine and stops it.
type Runner struct {
	c      Component
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs c.Run on a new goroutine. failed is called (on that goroutine)
// with Run's error when Run fails before Stop or Halt was called; an error
// Run returns because it was stopped is not a failure.
func Start(c Component, failed func(error)) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			failed(err)
		}
	}()
	return r
}

// Stop is the graceful stop: it drains the component until ctx ends, closes
// it if the drain did not finish, then ends Run and waits for it to return.
// It returns the Drain's error (nil when everything was handed on).
func (r *Runner) Stop(ctx context.Context) error {
	err := r.c.Drain(ctx)
	r.cancel() // first: a Run that fails on a closed component is then not a failure
	if err != nil {
		r.c.Close()
	}
	<-r.done
	return err
}

// Halt stops the component without draining it (Close) and waits for Run
// to return: a buffer keeps its chunks on disk for the one that replaces it.
func (r *Runner) Halt() {
	r.cancel()
	r.c.Close()
	<-r.done
}
