package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// testFrame encodes one frame with events "<prefix>0".."<prefix>n-1".
func testFrame(tag, prefix string, n int) []byte {
	bt := batch(tag, prefix, n, time.Date(2026, 11, 22, 13, 5, 0, 0, time.UTC))
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	f, _ := appendFrame(nil, tag, bt.Events, idx, nil)
	return f
}

// testChunk is a chunk file: header plus frames a0.., b0.., c0.. (3 events
// each), with the offsets where each frame starts.
type testChunk struct {
	id     string
	data   []byte
	starts []int
}

func makeTestChunk(t *testing.T) testChunk {
	t.Helper()
	id := newID(time.Now())
	h := &header{ID: id, Output: "out", Node: "n", Path: "p/", Tag: "app", Timekey: time.Hour,
		Slice: 1795870800, Created: time.Now().UTC()}
	tc := testChunk{id: id, data: appendHeader(nil, h)}
	for _, p := range []string{"a", "b", "c"} {
		tc.starts = append(tc.starts, len(tc.data))
		tc.data = append(tc.data, testFrame("app", p, 3)...)
	}
	return tc
}

func (tc testChunk) ids(prefixes ...string) []string {
	var out []string
	for _, p := range prefixes {
		out = append(out, wantIDs(p, 3)...)
	}
	slices.Sort(out)
	return out
}

func TestRecoveryCorruptionTable(t *testing.T) {
	type result struct {
		delivered   []string // event ids
		cut         int64
		quarantined int
	}
	cases := []struct {
		name string
		// setup writes files into dir (the buffer folder) and returns what
		// recovery must produce.
		setup func(t *testing.T, dir string, tc testChunk) result
	}{
		{"clean sealed chunk", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+queuedSuffix, tc.data)
			return result{delivered: tc.ids("a", "b", "c")}
		}},
		{"clean chunk left open by a crash", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data)
			return result{delivered: tc.ids("a", "b", "c")}
		}},
		{"torn last frame (payload cut short)", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data[:len(tc.data)-7])
			return result{delivered: tc.ids("a", "b"), cut: int64(len(tc.data) - 7 - tc.starts[2])}
		}},
		{"torn frame head", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data[:tc.starts[2]+5])
			return result{delivered: tc.ids("a", "b"), cut: 5}
		}},
		{"bad CRC in the middle frame", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			d[tc.starts[1]+frameHeadSize+20] ^= 0x40
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a"), cut: int64(len(d) - tc.starts[1])}
		}},
		{"bad length (above the maximum)", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			binary.BigEndian.PutUint32(d[tc.starts[1]:], 0xfffffff0)
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a"), cut: int64(len(d) - tc.starts[1])}
		}},
		{"bad length (past the end of the file)", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			binary.BigEndian.PutUint32(d[tc.starts[2]:], uint32(len(d)))
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a", "b"), cut: int64(len(d) - tc.starts[2])}
		}},
		{"bad length (shorter, CRC then fails)", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			l := binary.BigEndian.Uint32(d[tc.starts[1]:])
			binary.BigEndian.PutUint32(d[tc.starts[1]:], l-3)
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a"), cut: int64(len(d) - tc.starts[1])}
		}},
		{"zero length frame followed by data", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			clear(d[tc.starts[1] : tc.starts[1]+frameHeadSize])
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a"), cut: int64(len(d) - tc.starts[1])}
		}},
		{"zeroed frame at the end (lost pages): cut, not counted", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			clear(d[tc.starts[2]:])
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a", "b")}
		}},
		{"zero-filled preallocation after good frames: cut, not counted", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, append(bytes.Clone(tc.data), make([]byte, 1<<20)...))
			return result{delivered: tc.ids("a", "b", "c")}
		}},
		{"torn frame inside the preallocation: only its bytes counted", func(t *testing.T, dir string, tc testChunk) result {
			d := append(bytes.Clone(tc.data[:tc.starts[2]+30]), make([]byte, 1<<20)...)
			write(t, dir, tc.id+openSuffix, d)
			return result{delivered: tc.ids("a", "b"), cut: 30}
		}},
		{"garbage after a good frame", func(t *testing.T, dir string, tc testChunk) result {
			d := append(bytes.Clone(tc.data[:tc.starts[1]]), []byte("this is not a frame, just garbage bytes")...)
			write(t, dir, tc.id+openSuffix, d)
			return result{delivered: tc.ids("a"), cut: int64(len(d) - tc.starts[1])}
		}},
		{"frame with a good CRC but a payload that is not [tag, entries]", func(t *testing.T, dir string, tc testChunk) result {
			bad := []byte{0x93, 0xa1, 'x', 0x90, 0xc0}
			fr := binary.BigEndian.AppendUint32(nil, uint32(len(bad)))
			fr = binary.BigEndian.AppendUint32(fr, crc(bad))
			fr = append(fr, bad...)
			d := append(bytes.Clone(tc.data[:tc.starts[2]]), fr...)
			d = append(d, tc.data[tc.starts[2]:]...)
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a", "b"), cut: int64(len(d) - tc.starts[2])}
		}},
		{"frame whose record is truncated msgpack (good CRC)", func(t *testing.T, dir string, tc testChunk) result {
			p := []byte{0x92, 0xa1, 'x', 0x91, 0x92}
			p = msgpack.AppendEventTime(p, 1, 0)
			p = append(p, 0x82, 0xa1, 'k') // map of 2 pairs, cut after one key
			fr := binary.BigEndian.AppendUint32(nil, uint32(len(p)))
			fr = binary.BigEndian.AppendUint32(fr, crc(p))
			d := append(bytes.Clone(tc.data[:tc.starts[1]]), append(fr, p...)...)
			write(t, dir, tc.id+queuedSuffix, d)
			return result{delivered: tc.ids("a"), cut: int64(len(d) - tc.starts[1])}
		}},
		{"truncated header", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data[:20])
			return result{quarantined: 1}
		}},
		{"truncated preamble", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data[:6])
			return result{quarantined: 1}
		}},
		{"empty file", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, nil)
			return result{quarantined: 1}
		}},
		{"bad magic", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			copy(d, "XXXX")
			write(t, dir, tc.id+queuedSuffix, d)
			return result{quarantined: 1}
		}},
		{"unknown version", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			d[4] = 9
			write(t, dir, tc.id+queuedSuffix, d)
			return result{quarantined: 1}
		}},
		{"header CRC mismatch", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			d[preambleSize+3] ^= 1
			write(t, dir, tc.id+queuedSuffix, d)
			return result{quarantined: 1}
		}},
		{"header length out of range", func(t *testing.T, dir string, tc testChunk) result {
			d := bytes.Clone(tc.data)
			binary.BigEndian.PutUint32(d[5:], 1<<20)
			write(t, dir, tc.id+queuedSuffix, d)
			return result{quarantined: 1}
		}},
		{"header without required keys", func(t *testing.T, dir string, tc testChunk) result {
			body := msgpack.AppendMapHeader(nil, 1)
			body = msgpack.AppendString(body, "id")
			body = msgpack.AppendString(body, tc.id)
			d := append([]byte(magic), formatVersion)
			d = binary.BigEndian.AppendUint32(d, uint32(len(body)))
			d = binary.BigEndian.AppendUint32(d, crc(body))
			d = append(d, body...)
			d = append(d, tc.data[tc.starts[0]:]...)
			write(t, dir, tc.id+queuedSuffix, d)
			return result{quarantined: 1}
		}},
		{"header id differs from the file name", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, newID(time.Now())+queuedSuffix, tc.data)
			return result{quarantined: 1}
		}},
		{"file name is not a chunk id", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, "NOT-AN-ID"+queuedSuffix, tc.data)
			return result{quarantined: 1}
		}},
		{"header only, no frame", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data[:tc.starts[0]])
			return result{}
		}},
		{"first frame torn: nothing left", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+openSuffix, tc.data[:tc.starts[0]+12])
			return result{cut: 12}
		}},
		{"missing directory entry after rename (seal rename lost)", func(t *testing.T, dir string, tc testChunk) result {
			// A seal renamed open → queued but the folder was not synced
			// before the crash: the file is back under its open name.
			write(t, dir, tc.id+queuedSuffix, tc.data)
			if err := os.Rename(filepath.Join(dir, tc.id+queuedSuffix), filepath.Join(dir, tc.id+openSuffix)); err != nil {
				t.Fatal(err)
			}
			return result{delivered: tc.ids("a", "b", "c")}
		}},
		{"same id open and queued (rename half seen)", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+queuedSuffix, tc.data)
			write(t, dir, tc.id+openSuffix, tc.data[:tc.starts[1]])
			return result{delivered: tc.ids("a", "b", "c"), quarantined: 1}
		}},
		{"unfinished requeue copy (.tmp) is removed", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, tc.id+".queued.tmp", tc.data[:tc.starts[2]])
			return result{}
		}},
		{"unrelated files are left alone", func(t *testing.T, dir string, tc testChunk) result {
			write(t, dir, "README", []byte("hello"))
			write(t, dir, tc.id+queuedSuffix, tc.data)
			return result{delivered: tc.ids("a", "b", "c")}
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "buf")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc := makeTestChunk(t)
			want := tt.setup(t, dir, tc)
			h := newHarness(t, testConfig(dir), nil, nil)
			st := h.b.Status()
			if st.RecoveryCut != want.cut {
				t.Errorf("cut %d bytes, want %d", st.RecoveryCut, want.cut)
			}
			if got := metricValue(t, h.b.m.cutBytes); got != float64(want.cut) {
				t.Errorf("cut metric %v, want %d", got, want.cut)
			}
			if st.Quarantined != int64(want.quarantined) {
				t.Errorf("quarantined %d, want %d", st.Quarantined, want.quarantined)
			}
			q := files(t, filepath.Join(dir, "quarantine"))
			if len(q) != 2*want.quarantined {
				t.Errorf("quarantine folder holds %v, want %d files and notes", q, want.quarantined)
			}
			if want.delivered != nil && st.QueuedChunks != 1 {
				t.Errorf("queued chunks %d, want 1", st.QueuedChunks)
			}
			h.start()
			// The buffer still takes appends after recovering, in a new file.
			h.consume("app", "new", 2, time.Now())
			h.drain()
			got := sortedIDs(h.sink.Deliveries())
			wantIDs := append(slices.Clone(want.delivered), "new0", "new1")
			slices.Sort(wantIDs)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("delivered %v\nwant      %v", got, wantIDs)
			}
			for _, c := range h.sink.Chunks() {
				if c.ID == tc.id && (c.Path != "p/" || c.Tag != "app" || !c.Slice.Equal(time.Unix(1795870800, 0))) {
					t.Errorf("recovered chunk info %+v", c)
				}
			}
			left := files(t, dir)
			if tt.name == "unrelated files are left alone" {
				if !slices.Equal(left, []string{"README"}) {
					t.Errorf("files left: %v", left)
				}
			} else if len(left) != 0 {
				t.Errorf("files left in the buffer folder: %v", left)
			}
		})
	}
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryOfARealCrashLayout writes through a Buffer, cuts its open
// chunk mid-frame as a crash would, and checks that a new Buffer keeps every
// complete append and writes new appends to a new file.
func TestRecoveryOfARealCrashLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "buf")
	h := newHarness(t, testConfig(dir), nil, nil)
	for i := 0; i < 5; i++ {
		h.consume("app", fmt.Sprintf("k%d-", i), 4, time.Now())
	}
	open := files(t, dir)
	if len(open) != 1 || !strings.HasSuffix(open[0], openSuffix) {
		t.Fatalf("files %v, want one open chunk", open)
	}
	p := filepath.Join(dir, open[0])
	// Simulate kill -9 in the middle of the sixth append: half a frame
	// where the next frame goes (inside the preallocated zeros).
	var c *chunk
	for _, o := range h.b.open {
		c = o
	}
	fr := testFrame("app", "torn", 4)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(fr[:len(fr)/2], c.written); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Leave without sealing, like a crash: drop the lock by closing the
	// file handle only.
	h.b.lockFile.Close()
	h.b.m.unregister()
	h.b.mu.Lock()
	for _, c := range h.b.open {
		c.f.Close()
	}
	h.b.open = map[string]*chunk{}
	h.b.closed = true
	h.b.mu.Unlock()

	h2 := newHarness(t, testConfig(dir), nil, nil)
	if got := h2.b.Status().RecoveryCut; got != int64(len(fr)/2) {
		t.Fatalf("cut %d, want %d", got, len(fr)/2)
	}
	h2.start()
	h2.consume("app", "after", 1, time.Now())
	h2.drain()
	ds := h2.sink.Deliveries()
	if len(ds) != 21 {
		t.Fatalf("delivered %d events, want 21", len(ds))
	}
	chunks := h2.sink.Chunks()
	if len(chunks) != 2 || chunks[0].ID == chunks[1].ID {
		t.Fatalf("want the old and a new chunk, got %+v", chunks)
	}
	if chunks[0].ID > chunks[1].ID {
		t.Errorf("new chunk id %s does not sort after the recovered %s", chunks[1].ID, chunks[0].ID)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := &header{Version: formatVersion, ID: newID(time.Now()), Output: "o", Node: "n", Path: "a/${x}/", Tag: "t.x", Timekey: 3600 * time.Second,
		Slice: 1700000000, Keys: map[string]string{"b": "2", "a": "1"}, Created: time.Unix(0, 1234567890123).UTC()}
	data := appendHeader(nil, h)
	got, n, err := readHeader(bytes.NewReader(append(data, 1, 2, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Errorf("header size %d, want %d", n, len(data))
	}
	if fmt.Sprint(got) != fmt.Sprint(h) {
		t.Errorf("got %+v\nwant %+v", got, h)
	}
}

func TestPayloadIsAForwardMessage(t *testing.T) {
	fr := testFrame("tag.a", "e", 2)
	p := fr[frameHeadSize:]
	n, rest, err := msgpack.ReadArrayHeader(p)
	if err != nil || n != 2 {
		t.Fatalf("payload is not a 2-array: %d %v", n, err)
	}
	tag, rest, _ := msgpack.ReadStr(rest)
	if string(tag) != "tag.a" {
		t.Fatalf("tag %q", tag)
	}
	n, rest, _ = msgpack.ReadArrayHeader(rest)
	if n != 2 {
		t.Fatalf("entries %d", n)
	}
	m, rest, _ := msgpack.ReadArrayHeader(rest)
	typ, data, _, err := msgpack.ReadExt(rest)
	if m != 2 || err != nil || typ != 0 || len(data) != 8 {
		t.Fatalf("entry is not [EventTime, record]: %d %d %v", m, typ, err)
	}
	// Times outside EventTime's range are kept as seconds.
	old := event.FromUnix(-100, 5)
	ev := []event.Event{{Time: old, Record: []byte{0x80}}}
	f, _ := appendFrame(nil, "t", ev, []int32{0}, nil)
	var gotT event.Time
	if _, _, err := walkPayload(f[frameHeadSize:], func(_ []byte, t event.Time, _ []byte) error { gotT = t; return nil }); err != nil {
		t.Fatal(err)
	}
	if gotT != event.FromUnix(-100, 0) {
		t.Errorf("time %d, want %d", gotT, event.FromUnix(-100, 0))
	}
}
