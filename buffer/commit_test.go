package buffer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/testutil"
)

// TestCommitWithoutWaiter: Consume with a Commit returns once the events
// are appended; the group commit that makes them durable happens although
// nobody waits (the frames reach the file and are fsynced); Commit.Wait
// then returns at once. A round that fails is counted without a waiter, and
// a later Wait sees its error.
func TestCommitWithoutWaiter(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "buf")), nil, nil).start()
	var commit event.Commit
	bt := batch("app", "nowait", 3, time.Now())
	bt.Commit = &commit
	if err := h.b.Consume(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	if commit.Empty() {
		t.Fatal("Consume with a Commit added nothing to wait for")
	}
	var c *chunk
	h.b.mu.Lock()
	for _, o := range h.b.open {
		c = o
	}
	h.b.mu.Unlock()
	testutil.WaitUntil(t, 10*time.Second, "the round nobody waits for", func() bool {
		h.b.commit.mu.Lock()
		defer h.b.commit.mu.Unlock()
		return h.b.commit.synced >= h.b.commit.seq
	})
	fi, err := os.Stat(filepath.Join(h.dir, c.name))
	if err != nil || fi.Size() <= c.dataOff {
		t.Fatalf("chunk file after the round: %v, %v", fi, err)
	}
	if err := commit.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A broken file: the append succeeds (memory), the round fails.
	c.f.Close()
	var failing event.Commit
	bt = batch("app", "lost", 2, time.Now())
	bt.Commit = &failing
	if err := h.b.Consume(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 10*time.Second, "the failed round to be counted", func() bool { return metricValue(t, h.b.m.commitFailures) == 1 })
	if err := failing.Wait(context.Background()); err == nil {
		t.Fatal("a failed commit reported success")
	}
	h.consume("app", "after", 2, time.Now())
	h.drain()
	got := sortedIDs(h.sink.Deliveries())
	want := append(wantIDs("after", 2), wantIDs("nowait", 3)...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}
