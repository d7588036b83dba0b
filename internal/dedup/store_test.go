package dedup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func str(s string) []byte { b, _ := msgpack.Marshal(s); return b }

// The encoding is FORMAT.md's table, checked with an independent decoder,
// and ParseMark reads back what AppendMark wrote.
func TestMarkEncoding(t *testing.T) {
	m := Mark{Batch: 1<<63 + 5, At: 1765000000123, IDs: [][]byte{str("a1"), {0xc4, 2, 0xff, 0}}, Part: 2, Parts: 3, Frame: 1, Frames: 4}
	b := AppendMark(nil, &m)
	var got map[string]any
	if err := msgpack.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"b": uint64(1<<63 + 5), "t": int64(1765000000123), "ids": []any{"a1", []byte{0xff, 0}},
		"p": int8(2), "n": int8(3), "f": int8(1), "m": int8(4)}
	for k, v := range want {
		if g := got[k]; !equalAny(g, v) {
			t.Errorf("key %s: %#v, want %#v", k, g, v)
		}
	}
	if !IsMark(b) || IsMark([]byte{0x92}) {
		t.Error("IsMark")
	}
	var back Mark
	rest, err := ParseMark(append(b, 0x92), &back)
	if err != nil || !bytes.Equal(rest, []byte{0x92}) {
		t.Fatalf("parse: %v, rest %x", err, rest)
	}
	if back.Batch != m.Batch || back.At != m.At || back.Part != 2 || back.Parts != 3 || back.Frame != 1 || back.Frames != 4 ||
		len(back.IDs) != 2 || !bytes.Equal(back.IDs[0], m.IDs[0]) || !bytes.Equal(back.IDs[1], m.IDs[1]) {
		t.Errorf("round trip: %+v", back)
	}
	for name, bad := range map[string]Mark{
		"part above parts":   {Part: 4, Parts: 3, Frame: 1, Frames: 1},
		"frame above frames": {Part: 1, Parts: 1, Frame: 2, Frames: 1},
		"part 0 of 2":        {Part: 0, Parts: 2, Frame: 1, Frames: 1},
	} {
		if _, err := ParseMark(AppendMark(nil, &bad), &back); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := ParseMark([]byte{0x81, 0xa1, 'b', 0x01}, &back); err == nil {
		t.Error("a mark without its keys parsed")
	}
}

func equalAny(a, b any) bool {
	if ab, ok := a.([]any); ok {
		bb := b.([]any)
		if len(ab) != len(bb) {
			return false
		}
		for i := range ab {
			if !equalAny(ab[i], bb[i]) {
				return false
			}
		}
		return true
	}
	if x, ok := a.([]byte); ok {
		return bytes.Equal(x, b.([]byte))
	}
	return fmt.Sprint(a) == fmt.Sprint(b) // numbers of any width
}

func testStore(t *testing.T, dir string, now *time.Time) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Window: time.Minute, MaxEntries: 100, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A batch counts only when every frame of every delivery was found: a
// crash can keep some of the files a batch went to and lose others.
func TestFoundNeedsEveryFrame(t *testing.T) {
	now := time.UnixMilli(1765000000000)
	s := testStore(t, "", &now)
	at := now.Add(-time.Second).UnixMilli()
	one := Mark{Batch: 1, At: at, IDs: [][]byte{str("single")}, Part: 1, Parts: 1, Frame: 1, Frames: 1}
	s.Found(&one)
	if !s.Contains(str("single"), time.Minute) {
		t.Fatal("a batch of one frame was not taken")
	}
	// Two deliveries (a copy), the second in two frames.
	ids := [][]byte{str("x"), str("y")}
	parts := []Mark{
		{Batch: 2, At: at, IDs: ids, Part: 1, Parts: 2, Frame: 1, Frames: 1},
		{Batch: 2, At: at, IDs: ids, Part: 2, Parts: 2, Frame: 2, Frames: 2},
		{Batch: 2, At: at, IDs: ids, Part: 2, Parts: 2, Frame: 1, Frames: 2},
	}
	for i, m := range parts {
		if s.Contains(str("x"), time.Minute) {
			t.Fatalf("taken after %d of 3 frames", i)
		}
		s.Found(&m)
	}
	if !s.Contains(str("x"), time.Minute) || !s.Contains(str("y"), time.Minute) {
		t.Fatal("a complete batch was not taken")
	}
	// Frame 1 of part 2 missing: never taken.
	s.Found(&Mark{Batch: 3, At: at, IDs: [][]byte{str("z")}, Part: 1, Parts: 2, Frame: 1, Frames: 1})
	s.Found(&Mark{Batch: 3, At: at, IDs: [][]byte{str("z")}, Part: 2, Parts: 2, Frame: 2, Frames: 2})
	if s.Contains(str("z"), time.Minute) {
		t.Fatal("an incomplete batch was taken")
	}
}

// The window counts on the wall clock from the mark's time; a time in
// the future counts as now.
func TestFoundWindow(t *testing.T) {
	now := time.UnixMilli(1765000000000)
	s := testStore(t, "", &now)
	old := Mark{Batch: 1, At: now.Add(-61 * time.Second).UnixMilli(), IDs: [][]byte{str("old")}, Part: 1, Parts: 1, Frame: 1, Frames: 1}
	young := Mark{Batch: 2, At: now.Add(-59 * time.Second).UnixMilli(), IDs: [][]byte{str("young")}, Part: 1, Parts: 1, Frame: 1, Frames: 1}
	future := Mark{Batch: 3, At: now.Add(time.Hour).UnixMilli(), IDs: [][]byte{str("future")}, Part: 1, Parts: 1, Frame: 1, Frames: 1}
	for _, m := range []*Mark{&old, &young, &future} {
		s.Found(m)
	}
	if s.Contains(str("old"), time.Minute) || !s.Contains(str("young"), time.Minute) || !s.Contains(str("future"), time.Minute) {
		t.Fatal("window not applied")
	}
	now = now.Add(2 * time.Second)
	if s.Contains(str("young"), time.Minute) {
		t.Error("young outlived the window")
	}
	now = now.Add(time.Minute)
	if s.Contains(str("future"), time.Minute) {
		t.Error("a future time was kept past now + window")
	}
}

// The record keeps the marks of chunks that left their buffers: a new
// Store on the folder knows their ids; a torn tail is cut; only one
// process uses the folder.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	now := time.UnixMilli(1765000000000)
	s := testStore(t, dir, &now)
	if !s.Persistent() {
		t.Fatal("not persistent")
	}
	if _, err := Open(Options{Dir: dir, Window: time.Minute, MaxEntries: 10}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second Open on the folder: %v", err)
	}
	at := now.Add(-time.Second).UnixMilli()
	keep := func(ms ...Mark) {
		t.Helper()
		if err := s.Keep(func(fn func(m *Mark)) error {
			for i := range ms {
				fn(&ms[i])
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	keep(Mark{Batch: 1, At: at, IDs: [][]byte{str("a")}, Part: 1, Parts: 1, Frame: 1, Frames: 1},
		Mark{Batch: 2, At: now.Add(-2 * time.Minute).UnixMilli(), IDs: [][]byte{str("expired")}, Part: 1, Parts: 1, Frame: 1, Frames: 1})
	keep(Mark{Batch: 3, At: at, IDs: [][]byte{str("b")}, Part: 1, Parts: 2, Frame: 1, Frames: 1}) // part 2 elsewhere
	s.Close()

	p := filepath.Join(dir, recordName)
	whole, _ := os.Stat(p)
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 9, 1, 2}) // a torn entry
	f.Close()
	s2 := testStore(t, dir, &now)
	if !s2.Contains(str("a"), time.Minute) || s2.Contains(str("b"), time.Minute) || s2.Contains(str("expired"), time.Minute) {
		t.Fatalf("after reopening: a %v b %v expired %v", s2.Contains(str("a"), time.Minute), s2.Contains(str("b"), time.Minute), s2.Contains(str("expired"), time.Minute))
	}
	if st, _ := os.Stat(p); st.Size() != whole.Size() {
		t.Errorf("record is %d bytes after the cut, want %d", st.Size(), whole.Size())
	}
	// Part 2 of batch 3, still in a chunk: found by a buffer's recovery.
	s2.Found(&Mark{Batch: 3, At: at, IDs: [][]byte{str("b")}, Part: 2, Parts: 2, Frame: 1, Frames: 1})
	if !s2.Contains(str("b"), time.Minute) {
		t.Error("a batch split between the record and a chunk was not taken")
	}
}

// Compaction keeps the record small: entries older than the window go,
// complete batches become one entry, the newest max ids stay.
func TestRecordCompaction(t *testing.T) {
	dir := t.TempDir()
	now := time.UnixMilli(1765000000000)
	s, err := Open(Options{Dir: dir, Window: time.Minute, MaxEntries: 1000, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	id := func(i int) []byte {
		return str(strings.Repeat("i", 40) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	for c := range 200 { // chunks of 100 batches of 2 parts each
		if err := s.Keep(func(fn func(*Mark)) error {
			for i := c * 100; i < (c+1)*100; i++ {
				now = now.Add(10 * time.Millisecond)
				m := Mark{Batch: uint64(i), At: now.UnixMilli(), IDs: [][]byte{id(i)}, Part: 1, Parts: 2, Frame: 1, Frames: 1}
				fn(&m)
				m.Part = 2
				fn(&m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	st, _ := os.Stat(filepath.Join(dir, recordName))
	if st.Size() > 3*minCompactSize {
		t.Fatalf("record is %d bytes", st.Size())
	}
	f, _ := os.Open(filepath.Join(dir, recordName))
	defer f.Close()
	n, complete := 0, 0
	if _, err := readRecord(f, func(m *Mark) {
		n++
		if m.Parts == 0 {
			complete++
		}
	}); err != nil {
		t.Fatal(err)
	}
	// 20000 batches of 2 parts, 10ms apart: the window (1m) holds 6000;
	// the last compaction kept at most 1000 ids.
	if complete == 0 || n > 1000+2*6000 {
		t.Errorf("%d entries, %d complete by themselves", n, complete)
	}
	s2, err := Open(Options{Dir: dir, Window: time.Minute, MaxEntries: 1000, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !s2.Contains(id(19999), time.Minute) || s2.Contains(id(0), time.Minute) {
		t.Error("the newest id is not known, or the oldest still is")
	}
}

// ParseMark takes any bytes without panicking, and what it accepts encodes
// back to a mark it reads the same.
func FuzzParseMark(f *testing.F) {
	f.Add(AppendMark(nil, &Mark{Batch: 7, At: 1, IDs: [][]byte{str("id")}, Part: 1, Parts: 1, Frame: 1, Frames: 1}))
	f.Add(AppendMark(nil, &Mark{Batch: 7, At: -1, IDs: nil}))
	f.Add([]byte{0x87, 0xa1, 'b', 0xcf})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Mark
		if _, err := ParseMark(b, &m); err != nil {
			return
		}
		var back Mark
		if _, err := ParseMark(AppendMark(nil, &m), &back); err != nil {
			t.Fatalf("re-encoded mark does not parse: %v", err)
		}
		if fmt.Sprint(back) != fmt.Sprint(m) {
			t.Fatalf("round trip: %+v vs %+v", back, m)
		}
	})
}
