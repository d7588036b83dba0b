package lifecycle

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a Component that records the calls made to it. Its Run
// returns when ctx is done or Close is called, or fails with runErr when
// fail is closed; its Drain waits for drained or ctx.
type recorder struct {
	mu      sync.Mutex
	calls   []string
	closed  chan struct{}
	once    sync.Once
	drained chan struct{}
	fail    chan struct{}
	runErr  error
}

func newRecorder() *recorder {
	return &recorder{closed: make(chan struct{}), drained: make(chan struct{}), fail: make(chan struct{})}
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		r.note("run: ctx done")
		return ctx.Err()
	case <-r.closed:
		r.note("run: closed")
		return nil
	case <-r.fail:
		return r.runErr
	}
}

func (r *recorder) Drain(ctx context.Context) error {
	select {
	case <-r.drained:
		r.note("drain: done")
		return nil
	case <-ctx.Done():
		r.note("drain: ctx done")
		return ctx.Err()
	}
}

func (r *recorder) Close() error {
	r.note("close")
	r.once.Do(func() { close(r.closed) })
	return nil
}

func noFailure(t *testing.T) func(error) {
	return func(err error) { t.Errorf("reported as failed: %v", err) }
}

// TestStopDrained: a drain that finishes ends Run without Close.
func TestStopDrained(t *testing.T) {
	c := newRecorder()
	close(c.drained)
	r := Start(c, noFailure(t))
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got, want := c.got(), []string{"drain: done", "run: ctx done"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// TestStopDrainTimedOut: a drain cut short by its context is followed by
// Close, and Stop returns the drain's error.
func TestStopDrainTimedOut(t *testing.T) {
	c := newRecorder()
	r := Start(c, noFailure(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the deadline", err)
	}
	got := c.got()
	if len(got) != 3 || got[0] != "drain: ctx done" || !slices.Contains(got, "close") {
		t.Errorf("calls %q, want the drain, then close and the end of Run", got)
	}
}

// TestHalt: Halt closes without draining and waits for Run.
func TestHalt(t *testing.T) {
	c := newRecorder()
	r := Start(c, noFailure(t))
	r.Halt()
	got := c.got()
	if slices.ContainsFunc(got, func(s string) bool { return s[:5] == "drain" }) || !slices.Contains(got, "close") || len(got) != 2 {
		t.Errorf("calls %q, want close and the end of Run, no drain", got)
	}
}

// TestRunFailure: Run's error before a stop is reported, once.
func TestRunFailure(t *testing.T) {
	c := newRecorder()
	c.runErr = errors.New("disk on fire")
	failed := make(chan error, 2)
	r := Start(c, func(err error) { failed <- err })
	close(c.fail)
	if err := <-failed; err != c.runErr {
		t.Fatalf("failed with %v", err)
	}
	r.Halt() // Run has returned: Halt does not block
	if len(failed) != 0 {
		t.Errorf("reported twice")
	}
}
