package buffer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
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

// perTag puts each tag in chunks of its own, as the lake's default path
// (tag=${tag}/…) does.
func perTag(tag string) string { return "tag=" + tag + "/" }

// TestCommitSideRound: while a round syncs one chunk file, a write to
// another file becomes durable in a round of its own (a side round), without
// waiting for the first; a write to the file in flight is not taken by a
// side round; every write is durable and delivered once the first round
// ends.
func TestCommitSideRound(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "buf")), nil, func(o *Options) { o.ResolvePath = perTag })
	g := h.b.commit
	entered, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	observe := g.observe
	g.observe = func(d time.Duration) { // after the syncs, before the round ends
		if held.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		observe(d)
	}
	h.start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	consume := func(tag, prefix string) *event.Commit {
		t.Helper()
		var c event.Commit
		bt := batch(tag, prefix, 2, time.Now())
		bt.Commit = &c
		if err := h.b.Consume(ctx, bt); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	first := make(chan error, 1)
	commitA := consume("a", "a1-")
	go func() { first <- commitA.Wait(ctx) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first round did not sync")
	}
	if err := consume("b", "b1-").Wait(ctx); err != nil {
		t.Fatalf("write to another file while a round is in flight: %v (before side rounds: waited for that round)", err)
	}
	select {
	case err := <-first:
		t.Fatalf("the held round ended early: %v", err)
	default:
	}
	commitA2 := consume("a", "a2-")
	g.mu.Lock()
	taken, seq := g.taken, g.seq
	g.mu.Unlock()
	g.side <- struct{}{}
	busy := g.run(true)
	<-g.side
	g.mu.Lock()
	takenAfter := g.taken
	g.mu.Unlock()
	if busy == nil || takenAfter != taken || taken >= seq {
		t.Fatalf("side round with the file in flight: busy %v, taken %d → %d of %d; want busy, nothing taken", busy != nil, taken, takenAfter, seq)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := commitA2.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	h.drain()
	got := sortedIDs(h.sink.Deliveries())
	want := slices.Concat(wantIDs("a1-", 2), wantIDs("a2-", 2), wantIDs("b1-", 2))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// BenchmarkCommitPerTag is fluentd-request-ack from Docker: each appender
// is one container with its own tag (so its own chunk file) and one
// request in flight: Consume with a Commit, Commit.Wait (the ack), then
// the next. think is the client's time between an ack and its next
// request, spread evenly over 0..2×think (a real daemon takes several
// milliseconds per line, so its requests do not come back as one crowd).
// It reports the median ack wait (Consume to Wait's return) beside the
// median fdatasync round, the ratio issue 12 bounds (≤ 1.5), and the
// fdatasyncs per append (one chunk file per request: never below 1).
func BenchmarkCommitPerTag(b *testing.B) {
	for _, think := range []time.Duration{0, 5 * time.Millisecond} {
		b.Run(fmt.Sprintf("appenders=20/think=%v", think), func(b *testing.B) {
			benchCommitPerTag(b, 20, think)
		})
	}
}

func benchCommitPerTag(b *testing.B, appenders int, think time.Duration) {
	cfg := testConfig(filepath.Join(b.TempDir(), "buf"))
	cfg.ChunkLimitSize = 8 << 20
	cfg.TotalLimitSize = 4 << 30
	cfg.FlushInterval = config.Duration(time.Minute)
	var rounds []time.Duration
	var mu sync.Mutex
	buf, err := New(Options{Name: "bench", Config: cfg, Sink: nopSink{}, ResolvePath: perTag})
	if err != nil {
		b.Fatal(err)
	}
	observe := buf.commit.observe
	buf.commit.observe = func(d time.Duration) {
		mu.Lock()
		rounds = append(rounds, d)
		mu.Unlock()
		observe(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { buf.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waits := make([][]time.Duration, appenders)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for g := range appenders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			bt := &event.Batch{Tag: fmt.Sprintf("docker.c%d", g), Events: []event.Event{{Time: event.Now(), Record: dockerRecord(g)}}}
			var commit event.Commit
			for next.Add(1) <= int64(b.N) {
				if think > 0 {
					time.Sleep(time.Duration(rng.Int64N(int64(2 * think))))
				}
				commit.Reset()
				bt.Commit = &commit
				start := time.Now()
				if err := buf.Consume(ctx, bt); err != nil {
					b.Error(err)
					return
				}
				if err := commit.Wait(ctx); err != nil {
					b.Error(err)
					return
				}
				waits[g] = append(waits[g], time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(waits...)
	mu.Lock()
	defer mu.Unlock()
	if len(all) == 0 || len(rounds) == 0 {
		return
	}
	slices.Sort(all)
	slices.Sort(rounds)
	ack, sync := all[len(all)/2], rounds[len(rounds)/2]
	b.ReportMetric(float64(ack.Microseconds()), "µs-ack-p50")
	b.ReportMetric(float64(sync.Microseconds()), "µs-fsync-p50")
	b.ReportMetric(float64(ack)/float64(sync), "ack/fsync")
	b.ReportMetric(float64(len(rounds))/float64(len(all)), "rounds/append")
}
