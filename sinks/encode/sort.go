package encode

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// sortKey is what rows are ordered by (sort_by): record keys, then
// optionally "time" (the event time), which config allows only last. A
// string compares by its bytes; another type sorts after strings, grouped
// by its msgpack bytes; a missing or nil value sorts first.
type sortKey struct {
	keys   []string // record keys
	byTime bool     // then the event time
}

func newSortKey(sortBy []string) sortKey {
	var k sortKey
	for _, s := range sortBy {
		if s == "time" {
			k.byTime = true
		} else {
			k.keys = append(k.keys, s)
		}
	}
	return k
}

func (k sortKey) none() bool     { return len(k.keys) == 0 && !k.byTime }
func (k sortKey) timeOnly() bool { return len(k.keys) == 0 && k.byTime }

// appendValues appends the record's values of the record keys, encoded so
// that comparing two results byte by byte orders the records.
func (k sortKey) appendValues(dst, rec []byte) []byte {
	for _, name := range k.keys {
		v, found, err := msgpack.MapGet(rec, name, maxDepth)
		switch {
		case err != nil || !found || msgpack.Peek(v) == msgpack.Nil:
			dst = append(dst, 0)
		case msgpack.Peek(v) == msgpack.Str || msgpack.Peek(v) == msgpack.Bin:
			s, _, _, _ := msgpack.ReadBytes(v)
			dst = appendEscaped(append(dst, 1), s)
		default:
			dst = appendEscaped(append(dst, 2), v)
		}
	}
	return dst
}

// appendEscaped appends s so that no encoded value is a prefix of another
// and byte order is kept: 0x00 becomes 0x00 0xff, and 0x00 0x00 ends it.
func appendEscaped(dst, s []byte) []byte {
	for {
		i := bytes.IndexByte(s, 0)
		if i < 0 {
			break
		}
		dst = append(append(dst, s[:i]...), 0, 0xff)
		s = s[i+1:]
	}
	return append(append(dst, s...), 0, 0)
}

// sortedScan calls fn for every event of c in the order of key (events
// equal by it keep their chunk order). A run of records is held in memory
// (at most runRows records and about rowGroupBytes of them); a chunk larger
// than that is cut into sorted runs spilled to a temporary file in tmpDir,
// then merged, so the whole file is in order (and a row group's statistics
// cover a narrow range of the first sort key).
//
// The record keys' values of a run are interned: a chunk holds few
// distinct values (containers) and many records, so records are sorted by
// the rank of their values, their time and their position — integer
// comparisons (sorting by the encoded keys with bytes.Compare cost as much
// as the rest of the encode).
//
// It reports whether the chunk was in order already (then the next one is
// likely to be, and inSortOrder is worth its pass).
func sortedScan(c delivery.Chunk, key sortKey, tmpDir string, runRows int, fn func(t event.Time, rec []byte) error) (inOrder bool, err error) {
	type item = sortItem
	var (
		items   []item
		data    = make([]byte, 0, runBytes(c.Info(), runRows))
		ids     = map[string]uint32{}
		vals    []string // by id
		scratch []byte
		prev    []byte
		prevT   event.Time
		spill   *os.File
		w       *bufio.Writer
		runs    [][2]int64 // [start, end) in the spill file
		pos     int64
	)
	defer func() {
		if spill != nil {
			spill.Close()
		}
	}()
	// sortRun sorts the run and returns the interned values by rank.
	sortRun := func() []string {
		order := make([]uint32, len(vals))
		for i := range order {
			order[i] = uint32(i)
		}
		slices.SortFunc(order, func(a, b uint32) int { return cmp.Compare(vals[a], vals[b]) })
		rank := make([]uint32, len(vals))
		byRank := make([]string, len(vals))
		for r, id := range order {
			rank[id], byRank[r] = uint32(r), vals[id]
		}
		for i := range items {
			items[i].id = rank[items[i].id]
		}
		slices.SortFunc(items, func(a, b item) int {
			if a.id != b.id {
				return cmp.Compare(a.id, b.id)
			}
			if key.byTime && a.t != b.t {
				return cmp.Compare(a.t, b.t)
			}
			return cmp.Compare(a.off, b.off)
		})
		return byRank
	}
	writeSpill := func() error {
		byRank := sortRun()
		if spill == nil {
			if err := os.MkdirAll(tmpDir, 0o755); err != nil && tmpDir != "" {
				return fmt.Errorf("sort spill: %w", err)
			}
			f, err := os.CreateTemp(tmpDir, ".maruta-sort-*.tmp")
			if err != nil {
				return fmt.Errorf("sort spill: %w", err)
			}
			// Unlinked at once: the open file stays usable, and a crash
			// leaves nothing behind.
			os.Remove(f.Name())
			spill, w = f, bufio.NewWriterSize(f, 256<<10)
		}
		start := pos
		var hdr [16]byte
		for _, it := range items {
			k := byRank[it.id]
			binary.LittleEndian.PutUint64(hdr[:8], uint64(it.t))
			binary.LittleEndian.PutUint32(hdr[8:12], uint32(len(k)))
			binary.LittleEndian.PutUint32(hdr[12:], uint32(it.n))
			w.Write(hdr[:])
			w.WriteString(k)
			if _, err := w.Write(data[it.off : it.off+it.n]); err != nil {
				return fmt.Errorf("sort spill: %w", err)
			}
			pos += int64(len(hdr) + len(k) + it.n)
		}
		runs = append(runs, [2]int64{start, pos})
		items, data = items[:0], data[:0]
		clear(ids)
		vals = vals[:0]
		return nil
	}
	inOrder = true
	err = c.Scan(func(_ string, t event.Time, rec []byte) error {
		scratch = key.appendValues(scratch[:0], rec)
		if inOrder {
			if len(items)+len(runs) > 0 && !ordered(key, prev, prevT, scratch, t) {
				inOrder = false
			}
			prev, prevT = append(prev[:0], scratch...), t
		}
		id, ok := ids[string(scratch)]
		if !ok {
			id = uint32(len(vals))
			vals = append(vals, string(scratch))
			ids[vals[id]] = id
		}
		items = append(items, item{id: id, t: t, off: len(data), n: len(rec)})
		data = append(data, rec...)
		if len(items) >= runRows || len(data) >= rowGroupBytes {
			return writeSpill()
		}
		return nil
	})
	if err != nil {
		return inOrder, err
	}
	if spill == nil { // everything fit in memory
		sortRun()
		for _, it := range items {
			if err := fn(it.t, data[it.off:it.off+it.n]); err != nil {
				return inOrder, err
			}
		}
		return inOrder, nil
	}
	if err := w.Flush(); err != nil {
		return inOrder, fmt.Errorf("sort spill: %w", err)
	}
	h := &runHeap{byTime: key.byTime}
	for i, r := range runs {
		h.rs = append(h.rs, &runReader{idx: i, r: bufio.NewReaderSize(io.NewSectionReader(spill, r[0], r[1]-r[0]), 64<<10)})
	}
	if len(items) > 0 { // the last run is merged from memory, not spilled
		mem := &runReader{idx: len(runs), items: items, data: data}
		for _, v := range sortRun() {
			mem.vals = append(mem.vals, []byte(v))
		}
		h.rs = append(h.rs, mem)
	}
	live := h.rs[:0]
	for _, rr := range h.rs {
		ok, err := rr.next()
		if err != nil {
			return inOrder, err
		}
		if ok {
			live = append(live, rr)
		}
	}
	h.rs = live
	heap.Init(h)
	for h.Len() > 0 {
		rr := h.rs[0]
		if err := fn(rr.t, rr.rec); err != nil {
			return inOrder, err
		}
		ok, err := rr.next()
		if err != nil {
			return inOrder, err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return inOrder, nil
}

// ordered reports whether a record (values b, time tb) may follow one
// with values a, time ta in sort order.
func ordered(key sortKey, a []byte, ta event.Time, b []byte, tb event.Time) bool {
	c := bytes.Compare(a, b)
	return c < 0 || c == 0 && (!key.byTime || ta <= tb)
}

// errOutOfOrder ends inSortOrder's scan at the first record out of order.
var errOutOfOrder = errors.New("out of sort order")

// inSortOrder reports whether c's records are in key order already — what
// a chunk of one container (a tag per container) usually is — by reading
// it once, up to the first record out of order.
func inSortOrder(c delivery.Chunk, key sortKey) (bool, error) {
	var prev, cur []byte
	var prevT event.Time
	first := true
	err := c.Scan(func(_ string, t event.Time, rec []byte) error {
		cur = key.appendValues(cur[:0], rec)
		if !first && !ordered(key, prev, prevT, cur, t) {
			return errOutOfOrder
		}
		first = false
		prev, cur, prevT = cur, prev, t
		return nil
	})
	if errors.Is(err, errOutOfOrder) {
		return false, nil
	}
	return err == nil, err
}

// sortItem is one record of a run held in memory.
type sortItem struct {
	id     uint32 // interned values; their rank once the run is sorted
	t      event.Time
	off, n int // data[off:off+n] is the record
}

// runBytes estimates the bytes of one run of c, to allocate them once.
func runBytes(info delivery.ChunkInfo, runRows int) int64 {
	n := min(info.Bytes, rowGroupBytes)
	if info.Events > int64(runRows) {
		n = min(n, info.Bytes/info.Events*int64(runRows)*11/10)
	}
	return n + 4096
}

// runReader reads one sorted run: from the spill file (per record, a
// header — time, values length, record length —, the record keys' values
// and the record), or the last run, from memory.
type runReader struct {
	idx      int
	t        event.Time
	key, rec []byte // the current record's values and record
	// spilled run
	r   *bufio.Reader
	buf []byte
	// run in memory
	items []sortItem
	data  []byte
	vals  [][]byte // by rank
	pos   int
}

func (rr *runReader) next() (bool, error) {
	if rr.r == nil {
		if rr.pos >= len(rr.items) {
			return false, nil
		}
		it := rr.items[rr.pos]
		rr.pos++
		rr.t, rr.key, rr.rec = it.t, rr.vals[it.id], rr.data[it.off:it.off+it.n]
		return true, nil
	}
	var hdr [16]byte
	if _, err := io.ReadFull(rr.r, hdr[:]); err != nil {
		if err == io.EOF {
			return false, nil
		}
		return false, fmt.Errorf("sort spill: %w", err)
	}
	rr.t = event.Time(binary.LittleEndian.Uint64(hdr[:8]))
	klen := int(binary.LittleEndian.Uint32(hdr[8:12]))
	n := klen + int(binary.LittleEndian.Uint32(hdr[12:]))
	if cap(rr.buf) < n {
		rr.buf = make([]byte, n)
	}
	rr.buf = rr.buf[:n]
	if _, err := io.ReadFull(rr.r, rr.buf); err != nil {
		return false, fmt.Errorf("sort spill: %w", err)
	}
	rr.key, rr.rec = rr.buf[:klen], rr.buf[klen:]
	return true, nil
}

// runHeap orders run readers by their current record's values, then time
// (when sorting by time), then run index (runs hold the chunk in order).
type runHeap struct {
	rs     []*runReader
	byTime bool
}

func (h *runHeap) Len() int { return len(h.rs) }
func (h *runHeap) Less(i, j int) bool {
	a, b := h.rs[i], h.rs[j]
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	if h.byTime && a.t != b.t {
		return a.t < b.t
	}
	return a.idx < b.idx
}
func (h *runHeap) Swap(i, j int) { h.rs[i], h.rs[j] = h.rs[j], h.rs[i] }
func (h *runHeap) Push(x any)    { h.rs = append(h.rs, x.(*runReader)) }
func (h *runHeap) Pop() any {
	x := h.rs[len(h.rs)-1]
	h.rs = h.rs[:len(h.rs)-1]
	return x
}
