package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/buffer/buffertest"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/testutil"
)

// fileCheck fails a test when a chunk handed to the sink has no file: the
// buffer must keep the file until Write returned nil.
func fileCheck(t *testing.T, dir string, next func(c delivery.Chunk, attempt int) error) func(delivery.Chunk, int) error {
	return func(c delivery.Chunk, attempt int) error {
		p := filepath.Join(dir, c.Info().ID+queuedSuffix)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("sink got chunk %s without its file: %v", c.Info().ID, err)
		}
		if next == nil {
			return nil
		}
		return next(c, attempt)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	sink := &buffertest.RecordingSink{}
	sink.Fail = fileCheck(t, dir, func(c delivery.Chunk, attempt int) error {
		if attempt <= 2 {
			return errors.New("s3: 503 slow down")
		}
		return nil
	})
	h := newHarness(t, testConfig(dir), sink, nil).start()
	h.consume("app", "e", 3, time.Now())
	h.drain()
	chunks := sink.Chunks()
	if len(chunks) != 1 {
		t.Fatalf("delivered %d chunks, want 1", len(chunks))
	}
	if n := sink.Attempts(chunks[0].ID); n != 3 {
		t.Errorf("attempts %d, want 3", n)
	}
	if got := metricValue(t, h.b.m.retries); got != 2 {
		t.Errorf("retries metric %v, want 2", got)
	}
	if got := sortedIDs(sink.Deliveries()); !slices.Equal(got, wantIDs("e", 3)) {
		t.Errorf("delivered %v", got)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("file left after delivery: %v", f)
	}
	st := h.b.Status()
	if st.LastError == "" || st.LastSuccess.IsZero() || st.LastErrorTime.IsZero() {
		t.Errorf("status does not show the error and the success: %+v", st)
	}
}

func TestDeleteOnlyAfterSuccess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	var calls atomic.Int32
	release := make(chan struct{})
	sink := &buffertest.RecordingSink{}
	sink.Fail = fileCheck(t, dir, func(c delivery.Chunk, attempt int) error {
		calls.Add(1)
		<-release
		return nil
	})
	h := newHarness(t, testConfig(dir), sink, nil).start()
	h.consume("app", "e", 3, time.Now())
	go h.b.Drain(context.Background())
	testutil.WaitUntil(t, 10*time.Second, "the sink to be called", func() bool { return calls.Load() == 1 })
	if f := files(t, dir); len(f) != 1 || !strings.HasSuffix(f[0], queuedSuffix) {
		t.Fatalf("during Write the folder holds %v, want the queued chunk", f)
	}
	close(release)
	testutil.WaitUntil(t, 10*time.Second, "the file to be removed", func() bool { return len(files(t, dir)) == 0 })
}

func TestPermanentErrorDeadLettersAndRequeueWhileRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	var refuse atomic.Bool
	refuse.Store(true)
	sink := &buffertest.RecordingSink{}
	sink.Fail = fileCheck(t, dir, func(c delivery.Chunk, attempt int) error {
		if refuse.Load() {
			return delivery.Permanent(errors.New("403 access denied"))
		}
		return nil
	})
	h := newHarness(t, testConfig(dir), sink, nil).start()
	h.consume("app", "e", 4, time.Now())
	h.drain()
	if len(sink.Deliveries()) != 0 {
		t.Fatal("refused chunk counted as delivered")
	}
	dls, err := ListDeadLetters(h.dead)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v %v, want 1", dls, err)
	}
	d := dls[0]
	if d.Reason != "permanent" || d.Events != 4 || d.Output != "out" || d.Attempts != 1 ||
		!strings.Contains(d.Error, "403") || d.When.IsZero() || d.Bytes == 0 {
		t.Errorf("dead letter %+v", d)
	}
	if st := h.b.Status(); st.DeadLettered != 1 || st.TotalBytes != 0 {
		t.Errorf("status %+v", st)
	}
	if got := metricValue(t, h.b.m.deadChunks); got != 1 {
		t.Errorf("dead-lettered metric %v", got)
	}
	// The chunk is intact: it reads back completely.
	n := 0
	if err := ReadChunkFile(d.File, func(string, event.Time, []byte) error { n++; return nil }); err != nil || n != 4 {
		t.Fatalf("dead chunk reads %d events, %v", n, err)
	}

	// Requeue into the running buffer: it picks the chunk up by polling.
	refuse.Store(false)
	moved, err := Requeue(h.dead, dir, []string{d.ID})
	if err != nil || moved != 1 {
		t.Fatalf("Requeue: %d %v", moved, err)
	}
	testutil.WaitUntil(t, 10*time.Second, "the requeued chunk to be delivered", func() bool { return len(sink.Deliveries()) == 4 })
	if c := sink.Chunks()[0]; c.ID != d.ID {
		t.Errorf("requeued chunk delivered as %s, want the same id %s", c.ID, d.ID)
	}
	if dls, _ := ListDeadLetters(h.dead); len(dls) != 0 {
		t.Errorf("dead letters left: %v", dls)
	}
	if f := files(t, h.dead); len(f) != 0 {
		t.Errorf("dead-letter folder holds %v", f)
	}
}

func TestRetryExhaustionDeadLettersAndRequeueAtStart(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "buf")
	cfg := testConfig(dir)
	cfg.RetryMaxTimes = 2
	cfg.RetryTimeout = 0
	sink := &buffertest.RecordingSink{}
	sink.Fail = fileCheck(t, dir, func(c delivery.Chunk, attempt int) error { return errors.New("connection refused") })
	h := newHarness(t, cfg, sink, nil).start()
	h.consume("app", "e", 2, time.Now())
	h.drain()
	h.stop()
	dls, _ := ListDeadLetters(h.dead)
	if len(dls) != 1 || dls[0].Reason != "retries_exhausted" || dls[0].Attempts != 3 {
		t.Fatalf("dead letters %+v, want one after 3 attempts (2 retries)", dls)
	}
	if n := sink.Attempts(dls[0].ID); n != 3 {
		t.Errorf("sink saw %d attempts, want 3", n)
	}

	// Requeue while stopped (all ids), then start: delivered at start.
	if n, err := Requeue(h.dead, dir, nil); n != 1 || err != nil {
		t.Fatalf("Requeue: %d %v", n, err)
	}
	sink2 := &buffertest.RecordingSink{}
	h2 := newHarness(t, cfg, sink2, nil).start()
	h2.drain()
	if got := sortedIDs(sink2.Deliveries()); !slices.Equal(got, wantIDs("e", 2)) {
		t.Errorf("delivered %v", got)
	}
	if _, err := Requeue(h.dead, dir, []string{"zzzzzzzzzzzzzzzz"}); err == nil {
		t.Error("requeueing a missing id did not fail")
	}
}

func TestRetryTimeoutDeadLetters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.RetryTimeout = config.Duration(150 * time.Millisecond)
	cfg.RetryWait = config.Duration(20 * time.Millisecond)
	cfg.RetryMaxInterval = config.Duration(time.Second)
	sink := &buffertest.RecordingSink{Fail: func(delivery.Chunk, int) error { return errors.New("timeout") }}
	h := newHarness(t, cfg, sink, nil).start()
	start := time.Now()
	h.consume("app", "e", 1, time.Now())
	h.drain()
	el := time.Since(start)
	dls, _ := ListDeadLetters(h.dead)
	if len(dls) != 1 || dls[0].Reason != "retries_exhausted" {
		t.Fatalf("dead letters %+v", dls)
	}
	if el < 150*time.Millisecond {
		t.Errorf("gave up after %v, before retry_timeout", el)
	}
	if dls[0].Attempts < 2 {
		t.Errorf("only %d attempts in 150ms with a 20ms retry_wait (a last one is due at the timeout)", dls[0].Attempts)
	}
}

func TestBackoff(t *testing.T) {
	f := false
	b := &Buffer{cfg: config.Buffer{RetryWait: config.Duration(time.Second), RetryMaxInterval: config.Duration(10 * time.Second), RetryRandomize: &f}}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, b.backoff(n))
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoff %v, want %v s", got, want)
		}
	}
	tr := true
	b.cfg.RetryRandomize = &tr
	for i := 0; i < 100; i++ {
		if w := b.backoff(3); w < 3*time.Second || w >= 5*time.Second {
			t.Fatalf("jittered backoff %v outside [3s, 5s)", w)
		}
		if w := b.backoff(10); w > 10*time.Second {
			t.Fatalf("jittered backoff %v above retry_max_interval", w)
		}
	}
}

// stallSink blocks every Write until released.
type stallSink struct {
	buffertest.RecordingSink
	release chan struct{}
	writes  atomic.Int32
}

func (s *stallSink) Write(ctx context.Context, c delivery.Chunk) error {
	s.writes.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.RecordingSink.Write(ctx, c)
}

func TestOverflowThrow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.OverflowAction = "throw"
	cfg.ChunkLimitSize = 8 << 10
	cfg.TotalLimitSize = 32 << 10
	sink := &stallSink{release: make(chan struct{})}
	h := newHarness(t, cfg, nil, func(o *Options) { o.Sink = sink }).start()
	var accepted, rejected int
	for i := 0; i < 100 && rejected == 0; i++ {
		err := h.b.Consume(context.Background(), batch("app", fmt.Sprintf("b%d-", i), 10, time.Now()))
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrFull):
			rejected++
		default:
			t.Fatalf("Consume: %v", err)
		}
	}
	if rejected == 0 || accepted == 0 {
		t.Fatalf("accepted %d, rejected %d", accepted, rejected)
	}
	if st := h.b.Status(); st.TotalBytes > int64(cfg.TotalLimitSize)+1024 { // headers may exceed it
		t.Errorf("total %d above the limit %d", st.TotalBytes, cfg.TotalLimitSize)
	}
	if got := metricValue(t, h.b.m.rejected); got != 10 {
		t.Errorf("rejected events metric %v, want 10", got)
	}
	close(sink.release)
	h.drain()
	if got := len(sink.Deliveries()); got != accepted*10 {
		t.Errorf("delivered %d events, want %d (every accepted one)", got, accepted*10)
	}
	if metricValue(t, h.b.m.dropEvents) != 0 {
		t.Error("throw dropped events")
	}
}

func TestOverflowDropOldestChunk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.OverflowAction = "drop_oldest_chunk"
	cfg.ChunkLimitSize = 4 << 10
	cfg.TotalLimitSize = 16 << 10
	cfg.FlushThreadCount = 1
	sink := &stallSink{release: make(chan struct{})}
	h := newHarness(t, cfg, nil, func(o *Options) { o.Sink = sink }).start()
	const batches = 60
	for i := 0; i < batches; i++ {
		if err := h.b.Consume(context.Background(), batch("app", fmt.Sprintf("b%02d-", i), 5, time.Now())); err != nil {
			t.Fatalf("Consume %d: %v (drop_oldest_chunk must not refuse)", i, err)
		}
		if st := h.b.Status(); st.TotalBytes > int64(cfg.TotalLimitSize)+1024 { // headers may exceed it
			t.Fatalf("total %d above the limit", st.TotalBytes)
		}
	}
	st := h.b.Status()
	dropped := int(metricValue(t, h.b.m.dropEvents))
	if dropped == 0 || int64(dropped) != st.DroppedEvents {
		t.Fatalf("dropped %d events (status %d)", dropped, st.DroppedEvents)
	}
	if metricValue(t, h.b.m.dropChunks) == 0 || metricValue(t, h.b.m.dropBytes) == 0 {
		t.Error("dropped chunks/bytes not counted")
	}
	close(sink.release)
	h.drain()
	delivered := sink.IDs()
	if len(sink.Deliveries())+dropped != batches*5 {
		t.Errorf("delivered %d + dropped %d != %d appended", len(sink.Deliveries()), dropped, batches*5)
	}
	// The first chunk was in flight (never droppable) and is delivered;
	// of the rest, the oldest went first: what survives is every batch
	// from some point on.
	if delivered["b00-0"] != 1 {
		t.Error("the in-flight chunk was dropped")
	}
	first := sink.Chunks()[0].ID
	var later []int
	for _, d := range sink.Deliveries() {
		if d.ChunkID != first {
			var bn, en int
			fmt.Sscanf(d.ID, "b%d-%d", &bn, &en)
			later = append(later, bn)
		}
	}
	slices.Sort(later)
	later = slices.Compact(later)
	if len(later) == 0 || later[len(later)-1] != batches-1 || later[len(later)-1]-later[0] != len(later)-1 {
		t.Errorf("surviving batches %v are not the newest ones", later)
	}
}

func TestTimekeySlicing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.Timekey = config.Duration(time.Hour)
	cfg.TimekeyWait = config.Duration(time.Hour) // no seal by time here
	h := newHarness(t, cfg, nil, func(o *Options) {
		o.ResolvePath = func(tag string) string { return "logs/" + tag + "/dt=%Y-%m-%d/hour=%H/" }
	}).start()
	t0 := time.Date(2026, 11, 22, 13, 59, 59, 0, time.UTC)
	bt := batch("web", "a", 3, t0)                    // 13:59:59
	more := batch("web", "b", 3, t0.Add(time.Second)) // 14:00:00
	bt.Events = append(bt.Events, more.Events...)
	if err := h.b.Consume(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	if st := h.b.Status(); st.OpenChunks != 2 {
		t.Fatalf("open chunks %d, want 2 (one per hour)", st.OpenChunks)
	}
	h.drain()
	chunks := h.sink.Chunks()
	if len(chunks) != 2 {
		t.Fatalf("chunks %d, want 2", len(chunks))
	}
	slices.SortFunc(chunks, func(a, b delivery.ChunkInfo) int { return a.Slice.Compare(b.Slice) })
	if !chunks[0].Slice.Equal(time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)) ||
		!chunks[1].Slice.Equal(time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)) {
		t.Errorf("slices %v, %v", chunks[0].Slice, chunks[1].Slice)
	}
	for _, c := range chunks {
		if c.Events != 3 || c.Path != "logs/web/dt=%Y-%m-%d/hour=%H/" || c.Tag != "web" || c.Output != "out" {
			t.Errorf("chunk %+v", c)
		}
	}
	for _, d := range h.sink.Deliveries() {
		sl := d.Time.Std().Truncate(time.Hour)
		for _, c := range chunks {
			if c.ID == d.ChunkID && !c.Slice.Equal(sl) {
				t.Errorf("event %s at %v in chunk of slice %v", d.ID, d.Time.Std(), c.Slice)
			}
		}
	}
}

// In a synctest bubble: the buffer's timers run on the bubble's clock, so
// "nothing else is delivered for the next second" is exact, and instant.
func TestTimekeyWaitSeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "buf")
		cfg := testConfig(dir) // flush_interval 1h
		cfg.Timekey = config.Duration(time.Second)
		cfg.TimekeyWait = config.Duration(100 * time.Millisecond)
		h := newHarness(t, cfg, nil, nil).start()
		// The current slice seals when it closes plus timekey_wait (< 1.1 s),
		// long before flush_interval; the next hour's slice waits.
		start := time.Now()
		h.consume("app", "now", 2, start)
		h.consume("app", "next", 2, start.Add(time.Hour))
		time.Sleep(1200 * time.Millisecond)
		synctest.Wait()
		if got := sortedIDs(h.sink.Deliveries()); !slices.Equal(got, wantIDs("now", 2)) {
			t.Errorf("delivered %v 1.2 s after, want the closed slice", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := sortedIDs(h.sink.Deliveries()); !slices.Equal(got, wantIDs("now", 2)) {
			t.Errorf("delivered %v a second later, want the closed slice only", got)
		}
		if st := h.b.Status(); st.OpenChunks != 1 {
			t.Errorf("open chunks %d, want 1", st.OpenChunks)
		}
	})
}

func TestLateEventsCollectForFlushInterval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.Timekey = config.Duration(time.Hour)
	cfg.TimekeyWait = config.Duration(time.Minute)
	cfg.FlushInterval = config.Duration(300 * time.Millisecond)
	h := newHarness(t, cfg, nil, nil).start()
	// Events of a slice that closed long ago (a replayed backlog) share one
	// chunk until flush_interval, instead of one chunk per append.
	old := time.Now().Add(-3 * time.Hour)
	for i := 0; i < 5; i++ {
		h.consume("app", fmt.Sprintf("late%d-", i), 2, old)
	}
	if st := h.b.Status(); st.OpenChunks != 1 {
		t.Fatalf("open chunks %d right after the appends, want 1", st.OpenChunks)
	}
	testutil.WaitUntil(t, 10*time.Second, "the late chunk to be delivered", func() bool { return len(h.sink.Deliveries()) == 10 })
	if n := len(h.sink.Chunks()); n != 1 {
		t.Errorf("late events delivered in %d chunks, want 1", n)
	}
}

func TestChunkLimitSizeSeals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.ChunkLimitSize = 4 << 10
	sink, maxSize := sizeRecordingSink(dir)
	h := newHarness(t, cfg, sink, nil).start()
	for i := 0; i < 20; i++ {
		h.consume("app", fmt.Sprintf("b%d-", i), 5, time.Now()) // ~700 bytes each
	}
	// Full chunks are delivered without waiting for flush_interval (1h).
	testutil.WaitUntil(t, 10*time.Second, "sealed chunks to be delivered", func() bool { return len(sink.Chunks()) >= 2 })
	h.drain()
	if n := len(sink.Chunks()); n < 3 {
		t.Errorf("%d chunks for ~14 KiB with a 4 KiB limit", n)
	}
	if m := maxSize.Load(); m > int64(cfg.ChunkLimitSize) {
		t.Errorf("a chunk file has %d bytes, above chunk_limit_size %d", m, cfg.ChunkLimitSize)
	}
	if len(sink.Deliveries()) != 100 {
		t.Errorf("delivered %d events, want 100", len(sink.Deliveries()))
	}
	// A single batch larger than a chunk is split over several chunks.
	h2 := newHarness(t, testConfig(filepath.Join(t.TempDir(), "b2")), nil, nil)
	h2.b.cfg.ChunkLimitSize = 2 << 10
	h2.b.chunkMax = 2 << 10
	h2.b.frameMax = 1 << 10
	h2.start()
	h2.consume("app", "big", 40, time.Now())
	h2.drain()
	if n := len(h2.sink.Chunks()); n < 3 {
		t.Errorf("a 6 KiB batch made %d chunks with a 2 KiB limit", n)
	}
	if got := sortedIDs(h2.sink.Deliveries()); !slices.Equal(got, wantIDs("big", 40)) {
		t.Errorf("split batch delivered %d events", len(got))
	}
}

func TestFlushIntervalSeals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.FlushInterval = config.Duration(100 * time.Millisecond)
	h := newHarness(t, cfg, nil, nil).start()
	start := time.Now()
	h.consume("app", "e", 1, time.Now())
	testutil.WaitUntil(t, 10*time.Second, "flush_interval to seal and deliver", func() bool { return len(h.sink.Deliveries()) == 1 })
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("delivered after %v, before flush_interval", el)
	}
}

func TestMaxOpenChunks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.MaxOpenChunks = 2
	h := newHarness(t, cfg, nil, func(o *Options) { o.ResolvePath = func(tag string) string { return tag + "/" } }).start()
	h.consume("t1", "a", 1, time.Now())
	h.consume("t2", "b", 1, time.Now())
	h.consume("t3", "c", 1, time.Now()) // seals t1's chunk, the oldest
	testutil.WaitUntil(t, 10*time.Second, "the oldest open chunk to be delivered", func() bool { return len(h.sink.Deliveries()) == 1 })
	if d := h.sink.Deliveries()[0]; d.ID != "a0" || d.Tag != "t1" {
		t.Errorf("first delivery %+v, want t1's", d)
	}
	if st := h.b.Status(); st.OpenChunks != 2 {
		t.Errorf("open chunks %d, want 2", st.OpenChunks)
	}
	h.drain()
	for _, c := range h.sink.Chunks() {
		if c.Path != c.Tag+"/" {
			t.Errorf("chunk path %q for tag %q", c.Path, c.Tag)
		}
	}
}

func TestMixedTagsInOneChunk(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "buf")), nil, nil).start()
	h.consume("a.x", "a", 2, time.Now())
	h.consume("b.y", "b", 2, time.Now())
	h.drain()
	if n := len(h.sink.Chunks()); n != 1 {
		t.Fatalf("%d chunks, want 1 (path does not use the tag)", n)
	}
	for _, d := range h.sink.Deliveries() {
		if want := map[byte]string{'a': "a.x", 'b': "b.y"}[d.ID[0]]; d.Tag != want {
			t.Errorf("event %s has tag %q, want %q", d.ID, d.Tag, want)
		}
	}
	if c := h.sink.Chunks()[0]; c.Tag != "a.x" {
		t.Errorf("chunk tag %q, want the first append's", c.Tag)
	}
}

func TestChunkKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	cfg := testConfig(dir)
	cfg.ChunkKeys = []string{"app", "lvl"}
	h := newHarness(t, cfg, nil, func(o *Options) { o.ResolvePath = func(tag string) string { return "app=${app}/lvl=${lvl}/" } }).start()
	bt := &event.Batch{Tag: "t"}
	for i, app := range []string{"web", "db", "web", "../etc"} {
		bt.Events = append(bt.Events, event.Event{Time: event.Now(), Record: buffertest.Record(fmt.Sprint(i), "x", "app", app)})
	}
	if err := h.b.Consume(context.Background(), bt); err != nil {
		t.Fatal(err)
	}
	h.drain()
	got := map[string]int64{}
	for _, c := range h.sink.Chunks() {
		got[c.Path] = c.Events
		if c.Keys["app"] == "" && c.Path != "app=_/lvl=_/" {
			t.Errorf("keys %v", c.Keys)
		}
	}
	want := map[string]int64{"app=web/lvl=_/": 2, "app=db/lvl=_/": 1, "app=.._etc/lvl=_/": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chunks by path %v, want %v", got, want)
	}
}

func TestConsumeAfterDrainFails(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "buf")), nil, nil).start()
	h.drain()
	err := h.b.Consume(context.Background(), batch("app", "e", 1, time.Now()))
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Consume after Drain: %v, want ErrClosed", err)
	}
}

func TestRunCancelLeavesInflightChunkQueued(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	sink := &stallSink{release: make(chan struct{})}
	h := newHarness(t, testConfig(dir), nil, func(o *Options) { o.Sink = sink }).start()
	h.consume("app", "e", 3, time.Now())
	go h.b.Drain(context.Background())
	testutil.WaitUntil(t, 10*time.Second, "the sink to be called", func() bool { return sink.writes.Load() == 1 })
	h.stop() // Write returns ctx.Err()
	if f := files(t, dir); len(f) != 1 || !strings.HasSuffix(f[0], queuedSuffix) {
		t.Fatalf("after Run returned the folder holds %v, want the queued chunk", f)
	}
	h2 := newHarness(t, testConfig(dir), nil, nil).start()
	h2.drain()
	if got := sortedIDs(h2.sink.Deliveries()); !slices.Equal(got, wantIDs("e", 3)) {
		t.Errorf("delivered after restart %v", got)
	}
}

func TestShutdownSealsOpenChunks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	h := newHarness(t, testConfig(dir), nil, nil).start()
	h.consume("app", "e", 3, time.Now())
	h.stop()
	if f := files(t, dir); len(f) != 1 || !strings.HasSuffix(f[0], queuedSuffix) {
		t.Fatalf("after Run returned the folder holds %v, want a sealed chunk", f)
	}
	if err := h.b.Consume(context.Background(), batch("app", "x", 1, time.Now())); !errors.Is(err, ErrClosed) {
		t.Errorf("Consume after Run returned: %v", err)
	}
}

func TestFolderLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	h := newHarness(t, testConfig(dir), nil, nil)
	_, err := New(Options{Name: "other", Config: testConfig(dir), Sink: &buffertest.RecordingSink{}})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second New on the same folder: %v", err)
	}
	h.b.Close()
	b2, err := New(Options{Name: "other", Config: testConfig(dir), Sink: &buffertest.RecordingSink{}})
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	b2.Close()
}

func TestFsyncModes(t *testing.T) {
	for _, mode := range []config.FsyncMode{"always", "interval", "off"} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := testConfig(filepath.Join(t.TempDir(), "buf"))
			cfg.Fsync = mode
			h := newHarness(t, cfg, nil, nil).start()
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Go(func() {
					for i := 0; i < 20; i++ {
						if err := h.b.Consume(context.Background(), batch("app", fmt.Sprintf("g%d-%d-", g, i), 2, time.Now())); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			if mode == "interval" {
				testutil.WaitUntil(t, 10*time.Second, "an interval fsync", func() bool { return metricValue(t, h.b.m.fsync) > 0 })
			}
			if mode == "always" && metricValue(t, h.b.m.fsync) == 0 {
				t.Error("no fsync with fsync: always")
			}
			if mode == "off" && metricValue(t, h.b.m.fsync) != 0 {
				t.Error("fsync with fsync: off")
			}
			h.drain()
			if n := len(h.sink.Deliveries()); n != 8*20*2 {
				t.Errorf("delivered %d", n)
			}
		})
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "buf")), nil, nil)
	var wg sync.WaitGroup
	const n = 64
	for g := 0; g < n; g++ {
		wg.Go(func() {
			for i := 0; i < 20; i++ {
				if err := h.b.Consume(context.Background(), batch("app", fmt.Sprintf("g%d-%d-", g, i), 1, time.Now())); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	rounds := metricValue(t, h.b.m.fsync)
	if rounds >= n*20/2 {
		t.Errorf("%v fsync rounds for %d appends: group commit is not sharing", rounds, n*20)
	}
	t.Logf("%d appends, %v fsync rounds", n*20, rounds)
	h.b.Close()
}

func TestStatusAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	mk := func(name string) *Buffer {
		cfg := testConfig(filepath.Join(t.TempDir(), name))
		b, err := New(Options{Name: name, Config: cfg, Sink: &buffertest.RecordingSink{}, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2 := mk("one"), mk("two")
	defer b1.Close()
	defer b2.Close()
	if _, err := New(Options{Name: "one", Config: testConfig(t.TempDir()), Sink: &buffertest.RecordingSink{}, Registerer: reg}); err == nil {
		t.Error("two buffers with one name registered")
	}
	at := time.Now().Add(-time.Minute)
	if err := b1.Consume(context.Background(), batch("app", "e", 3, at)); err != nil {
		t.Fatal(err)
	}
	st := b1.Status()
	if st.OpenChunks != 1 || st.OpenBytes == 0 || st.TotalBytes != st.OpenBytes || st.OldestEvent.Unix() != at.Unix() {
		t.Errorf("status %+v", st)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "output" {
					found[mf.GetName()+"/"+l.GetValue()] = true
				}
			}
		}
	}
	for _, want := range []string{"maruta_buffer_bytes/one", "maruta_buffer_bytes/two", "maruta_buffer_oldest_event_age_seconds/one",
		"maruta_buffer_appended_events_total/one", "maruta_buffer_fsync_duration_seconds/one"} {
		if !found[want] {
			t.Errorf("metric %s missing", want)
		}
	}
}

func TestChunkIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	now := time.Now()
	for i := 0; i < 10000; i++ {
		id := newID(now) // the same clock reading: still increasing
		if !validID(id) || len(id) != 16 {
			t.Fatalf("bad id %q", id)
		}
		if id <= prev || seen[id] {
			t.Fatalf("id %s not after %s", id, prev)
		}
		seen[id], prev = true, id
	}
	future := newID(now.Add(time.Hour))
	idGen.Lock()
	idGen.last = now.UnixMicro()
	idGen.Unlock()
	observeID(future)
	if id := newID(now); id <= future {
		t.Errorf("id %s does not sort after an observed id %s", id, future)
	}
	idGen.Lock()
	idGen.last = now.UnixMicro()
	idGen.Unlock()
	if got := idTime(newID(time.Unix(1700000000, 0))); got.Before(now.Add(-time.Second)) {
		t.Errorf("id time %v went backwards", got)
	}
}

func TestKeyValues(t *testing.T) {
	cases := []struct {
		v    []byte
		want string
	}{
		{buffertest.Record("x", "y"), `{"id":"x","log":"y"}`},
		{[]byte{0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, "1.0"},
		{[]byte{0xc0}, ""},
		{[]byte{0xc3}, "true"},
		{[]byte{0xd0, 0x85}, "-123"},
		{[]byte{0x92, 0x01, 0xa1, 'a'}, `[1,"a"]`},
	}
	for _, c := range cases {
		rec := append([]byte{0x81, 0xa1, 'k'}, c.v...)
		if got := keyValue(rec, "k"); got != c.want {
			t.Errorf("keyValue(%x) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := keyValue([]byte{0x80}, "k"); got != "" {
		t.Errorf("missing key = %q", got)
	}
	for f, want := range map[float64]string{1e20: "1.0e+20", 0.1: "0.1", 1.5e-5: "1.5e-05", -2: "-2.0", 123456.789: "123456.789"} {
		if got := rubyFloat(f); got != want {
			t.Errorf("rubyFloat(%v) = %q, want %q", f, got, want)
		}
	}
	for in, want := range map[string]string{"": "_", ".": "_", "..": "_", "a/b": "a_b", "ok-1.2_x=y": "ok-1.2_x=y", "日本": "__"} {
		if got := sanitizeSegment(in); got != want {
			t.Errorf("sanitizeSegment(%q) = %q, want %q", in, got, want)
		}
	}
	if s := sliceOf(event.FromUnix(-1, 0), int64(time.Hour)); s != -3600 {
		t.Errorf("slice of -1s = %d", s)
	}
}

// TestWriteErrorFailsAppendAndRotates breaks a chunk's file under the
// buffer: the append that cannot be written must fail (no ack), later appends
// must go to a new chunk, and what was durable before is still delivered.
func TestWriteErrorFailsAppendAndRotates(t *testing.T) {
	for _, mode := range []config.FsyncMode{"always", "interval"} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := testConfig(filepath.Join(t.TempDir(), "buf"))
			cfg.Fsync = mode
			h := newHarness(t, cfg, nil, nil).start()
			h.consume("app", "ok", 2, time.Now())
			h.b.mu.Lock()
			var c *chunk
			for _, o := range h.b.open {
				c = o
			}
			h.b.mu.Unlock()
			c.f.Close() // every later write and sync of this file fails
			err := h.b.Consume(context.Background(), batch("app", "lost", 2, time.Now()))
			if mode == "always" && err == nil {
				t.Fatal("append to a broken file was acknowledged")
			}
			if mode == "interval" && err == nil {
				t.Fatal("write to a broken file did not fail")
			}
			h.consume("app", "after", 2, time.Now())
			h.drain()
			got := sortedIDs(h.sink.Deliveries())
			want := append(wantIDs("after", 2), wantIDs("ok", 2)...)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
			if st := h.b.Status(); st.TotalBytes != 0 || st.LastError == "" {
				t.Errorf("after drain: total %d bytes, last error %q", st.TotalBytes, st.LastError)
			}
		})
	}
}

// In a synctest bubble: synctest.Wait says when the buffer is idle, so
// "no chunk sealed" is checked when nothing more can happen.
func TestSealSizeSeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "buf")
		cfg := testConfig(dir) // chunk_limit_size 1 MiB, flush_interval 1h
		sink, maxSize := sizeRecordingSink(dir)
		var seal atomic.Int64
		seal.Store(4 << 10)
		h := newHarness(t, cfg, sink, func(o *Options) { o.SealSize = seal.Load }).start()
		for i := 0; i < 20; i++ {
			h.consume("app", fmt.Sprintf("b%d-", i), 5, time.Now()) // ~700 bytes each
		}
		// The sink's target (4 KiB, far below chunk_limit_size) seals chunks.
		synctest.Wait() // every sealed chunk is delivered
		if n := len(sink.Chunks()); n < 2 {
			t.Fatalf("%d chunks sealed at a seal size of 4 KiB, want 2 or more", n)
		}
		if m := maxSize.Load(); m > 4<<10 {
			t.Errorf("a chunk file has %d bytes, above the seal size 4096", m)
		}
		// A target of 0 (unknown) or above chunk_limit_size leaves the limit.
		seal.Store(0)
		before := len(sink.Chunks())
		for i := 20; i < 40; i++ {
			h.consume("app", fmt.Sprintf("b%d-", i), 5, time.Now())
		}
		synctest.Wait() // the buffer is idle: what was sealed is delivered
		if n := len(sink.Chunks()); n != before {
			t.Errorf("%d more chunks sealed with no seal size, want 0", n-before)
		}
		h.drain()
		if len(sink.Deliveries()) != 200 {
			t.Errorf("delivered %d events, want 200", len(sink.Deliveries()))
		}
	})
}

// sizeRecordingSink is a sink that records the largest chunk file (in the
// buffer folder dir) it was handed.
func sizeRecordingSink(dir string) (*buffertest.RecordingSink, *atomic.Int64) {
	sink := &buffertest.RecordingSink{}
	maxSize := new(atomic.Int64)
	sink.Fail = func(c delivery.Chunk, _ int) error {
		st, err := os.Stat(filepath.Join(dir, c.Info().ID+queuedSuffix))
		if err == nil && st.Size() > maxSize.Load() {
			maxSize.Store(st.Size())
		}
		return nil
	}
	return sink, maxSize
}
