package encode

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// sortedScan calls fn for every event of c in time order (events with equal
// times keep their append order). Memory holds at most runRows records (and
// about rowGroupBytes of them) at once: a chunk larger than that is cut into
// sorted runs spilled to a temporary file in tmpDir, then merged.
func sortedScan(c delivery.Chunk, tmpDir string, runRows int, fn func(t event.Time, rec []byte) error) error {
	type item struct {
		t        event.Time
		off, len int
	}
	var (
		items []item
		data  []byte
		spill *os.File
		w     *bufio.Writer
		runs  [][2]int64 // [start, end) in the spill file
		pos   int64
	)
	defer func() {
		if spill != nil {
			spill.Close()
		}
	}()
	sortRun := func() {
		slices.SortStableFunc(items, func(a, b item) int {
			switch {
			case a.t < b.t:
				return -1
			case a.t > b.t:
				return 1
			}
			return 0
		})
	}
	writeRun := func() error {
		sortRun()
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
		var hdr [12]byte
		for _, it := range items {
			binary.LittleEndian.PutUint64(hdr[:8], uint64(it.t))
			binary.LittleEndian.PutUint32(hdr[8:], uint32(it.len))
			w.Write(hdr[:])
			if _, err := w.Write(data[it.off : it.off+it.len]); err != nil {
				return fmt.Errorf("sort spill: %w", err)
			}
			pos += int64(12 + it.len)
		}
		runs = append(runs, [2]int64{start, pos})
		items, data = items[:0], data[:0]
		return nil
	}
	err := c.Scan(func(_ string, t event.Time, rec []byte) error {
		items = append(items, item{t: t, off: len(data), len: len(rec)})
		data = append(data, rec...)
		if len(items) >= runRows || len(data) >= rowGroupBytes {
			return writeRun()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if spill == nil { // everything fit in memory
		sortRun()
		for _, it := range items {
			if err := fn(it.t, data[it.off:it.off+it.len]); err != nil {
				return err
			}
		}
		return nil
	}
	if len(items) > 0 {
		if err := writeRun(); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sort spill: %w", err)
	}
	data, items = nil, nil

	h := &runHeap{}
	for i, r := range runs {
		rr := &runReader{idx: i, r: bufio.NewReaderSize(io.NewSectionReader(spill, r[0], r[1]-r[0]), 64<<10)}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			h.rs = append(h.rs, rr)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		rr := h.rs[0]
		if err := fn(rr.t, rr.rec); err != nil {
			return err
		}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

type runReader struct {
	idx int
	r   *bufio.Reader
	t   event.Time
	rec []byte
}

func (rr *runReader) next() (bool, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(rr.r, hdr[:]); err != nil {
		if err == io.EOF {
			return false, nil
		}
		return false, fmt.Errorf("sort spill: %w", err)
	}
	rr.t = event.Time(binary.LittleEndian.Uint64(hdr[:8]))
	n := int(binary.LittleEndian.Uint32(hdr[8:]))
	if cap(rr.rec) < n {
		rr.rec = make([]byte, n)
	}
	rr.rec = rr.rec[:n]
	if _, err := io.ReadFull(rr.r, rr.rec); err != nil {
		return false, fmt.Errorf("sort spill: %w", err)
	}
	return true, nil
}

// runHeap orders run readers by current time, then run index (stable).
type runHeap struct{ rs []*runReader }

func (h *runHeap) Len() int { return len(h.rs) }
func (h *runHeap) Less(i, j int) bool {
	a, b := h.rs[i], h.rs[j]
	if a.t != b.t {
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
