package buffer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/buffer/buffertest"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// markLog is a DedupKeeper that records what the buffer tells it. Keep
// reads the marks from the chunk file: the buffer must call it before the
// file goes.
type markLog struct {
	mu    sync.Mutex
	found []dedup.Mark
	kept  []dedup.Mark
	keeps int
}

func copyMark(m *dedup.Mark) dedup.Mark {
	c := *m
	c.IDs = nil
	for _, id := range m.IDs {
		c.IDs = append(c.IDs, bytes.Clone(id))
	}
	return c
}

func (l *markLog) Found(m *dedup.Mark) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.found = append(l.found, copyMark(m))
}

func (l *markLog) Keep(marks func(fn func(m *dedup.Mark)) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keeps++
	return marks(func(m *dedup.Mark) { l.kept = append(l.kept, copyMark(m)) })
}

func (l *markLog) snapshot() (found, kept []dedup.Mark) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]dedup.Mark(nil), l.found...), append([]dedup.Mark(nil), l.kept...)
}

func idStr(s string) []byte { return msgpack.AppendString(nil, s) }

// A marked batch: every frame carries the mark with the delivery's number
// and its own; sinks see only the events; recovery hands the marks of
// whole frames to the index, and a chunk that leaves the folder hands its
// marks to the record before its file goes.
func TestDedupMarks(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(filepath.Join(dir, "buf"))
	cfg.Timekey = config.Duration(time.Hour)
	log := &markLog{}
	h := newHarness(t, cfg, nil, func(o *Options) { o.Dedup = log })
	t0 := time.Date(2026, 11, 22, 13, 59, 0, 0, time.UTC)
	b := batch("app", "e", 4, t0)
	b.Events[2].Time = event.Time(t0.Add(2 * time.Minute).UnixNano()) // the next slice: another chunk
	m := &dedup.Mark{Batch: 42, At: 1765000000000, IDs: [][]byte{idStr("req-1"), idStr("req-2")}}
	b.Dedup, b.Delivery, b.Deliveries = m, 2, 3
	if err := h.b.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Unmarked batches (no chunk option) write frames without marks (here
	// into a chunk of their own: another slice).
	h.consume("app", "plain", 2, t0.Add(-2*time.Hour))
	// A marked batch the router did not number is refused.
	nb := batch("app", "x", 1, t0)
	nb.Dedup = m
	if err := h.b.Consume(context.Background(), nb); !errors.Is(err, errUnnumbered) {
		t.Fatalf("unnumbered marked batch: %v", err)
	}
	h.stop() // seals

	// Recovery finds the marks of both frames.
	h2 := newHarness(t, cfg, nil, func(o *Options) { o.Dedup = log })
	found, _ := log.snapshot()
	if len(found) != 2 {
		t.Fatalf("recovery found %d marks, want 2", len(found))
	}
	frames := map[int]bool{}
	for _, f := range found {
		if f.Batch != 42 || f.At != m.At || f.Part != 2 || f.Parts != 3 || f.Frames != 2 || len(f.IDs) != 2 ||
			!bytes.Equal(f.IDs[0], idStr("req-1")) || !bytes.Equal(f.IDs[1], idStr("req-2")) {
			t.Errorf("mark %+v", f)
		}
		frames[f.Frame] = true
	}
	if !frames[1] || !frames[2] {
		t.Errorf("frames %v, want 1 and 2", frames)
	}
	// Delivery: the sink sees 6 events and no mark; Keep reads the marks
	// while the files are still there.
	h2.start()
	h2.drain()
	if got := sortedIDs(h2.sink.Deliveries()); strings.Join(got, ",") != "e0,e1,e2,e3,plain0,plain1" {
		t.Fatalf("delivered %v", got)
	}
	_, kept := log.snapshot()
	if len(kept) != 2 {
		t.Fatalf("Keep got %d marks, want 2", len(kept))
	}
	if log.keeps != 2 {
		t.Errorf("Keep called %d times, want 2 (the two marked chunks, not the third)", log.keeps)
	}
	if left := files(t, cfg.Path); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

// Keep runs before the chunk file is removed: it can still read it, and a
// dead-lettered chunk's marks are kept too.
func TestDedupKeepBeforeRemoval(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(filepath.Join(dir, "buf"))
	log := &markLog{}
	sink := &buffertest.RecordingSink{Fail: func(c delivery.Chunk, _ int) error {
		return delivery.Permanent(errors.New("refused"))
	}}
	h := newHarness(t, cfg, sink, func(o *Options) { o.Dedup = log }).start()
	b := batch("app", "e", 3, time.Now())
	b.Dedup, b.Delivery, b.Deliveries = &dedup.Mark{Batch: 1, At: 1, IDs: [][]byte{idStr("r")}}, 1, 1
	if err := h.b.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	h.b.Drain(context.Background())
	_, kept := log.snapshot()
	if len(kept) != 1 || kept[0].Frame != 1 || kept[0].Frames != 1 {
		t.Fatalf("kept %+v", kept)
	}
	dead, err := ListDeadLetters(h.dead)
	if err != nil || len(dead) != 1 || dead[0].Events != 3 {
		t.Fatalf("dead letters %+v %v", dead, err)
	}
	n := 0
	if err := ReadChunkFile(dead[0].File, func(string, event.Time, []byte) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("read the dead letter: %d events, %v", n, err)
	}
}

// Chunks of version 1 (no marks) are still read and delivered; in them a
// payload that starts with a map is corrupt, as it always was.
func TestReadsVersion1(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(filepath.Join(dir, "buf"))
	if err := os.MkdirAll(cfg.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	v1 := func(id string, frames ...[]byte) {
		h := &header{ID: id, Output: "out", Tag: "old", Created: time.Now()}
		data := appendHeader(nil, h)
		data[4] = 1
		for _, f := range frames {
			data = append(data, f...)
		}
		if err := os.WriteFile(filepath.Join(cfg.Path, id+queuedSuffix), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ev := batch("old", "v", 2, time.Now()).Events
	good, _ := appendFrame(nil, "old", ev, []int32{0, 1}, nil)
	marked, _ := appendFrame(nil, "old", ev, []int32{0}, &dedup.Mark{Batch: 1, At: 1, Part: 1, Parts: 1, Frame: 1, Frames: 1})
	v1("0hov2x292admixpa", good)
	v1("0hov2x292admixpb", good, marked)
	log := &markLog{}
	h := newHarness(t, cfg, nil, func(o *Options) { o.Dedup = log }).start()
	h.drain()
	if n := len(h.sink.Deliveries()); n != 4 {
		t.Fatalf("delivered %d events of the version-1 chunks, want 4", n)
	}
	if found, _ := log.snapshot(); len(found) != 0 {
		t.Errorf("found %d marks in version-1 files", len(found))
	}
	if metricValue(t, h.b.m.cutBytes) == 0 {
		t.Error("the map-first frame of a version-1 file was not cut")
	}
	h.stop()
	// The version byte of what is written now.
	h = newHarness(t, cfg, nil, nil)
	h.consume("new", "n", 1, time.Now())
	h.stop()
	names, _ := filepath.Glob(filepath.Join(cfg.Path, "*.chunk"))
	if len(names) != 1 {
		t.Fatalf("chunks %v", names)
	}
	data, _ := os.ReadFile(names[0])
	if data[4] != formatVersion || formatVersion != 2 {
		t.Errorf("version byte %d", data[4])
	}
}
