package buffer

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
)

// recoverAll scans the buffer folder at start (FORMAT.md, "Recovery").
func (b *Buffer) recoverAll() {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		b.log.Error("recovery: cannot list the buffer folder; starting empty", "dir", b.dir, "err", err)
		return
	}
	type names struct{ open, queued string }
	byID := map[string]*names{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		var id string
		var isOpen bool
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			if err := os.Remove(filepath.Join(b.dir, name)); err == nil {
				b.log.Info("recovery: removed an unfinished copy", "file", name)
			}
			continue
		case strings.HasSuffix(name, openSuffix):
			id, isOpen = strings.TrimSuffix(name, openSuffix), true
		case strings.HasSuffix(name, queuedSuffix):
			id = strings.TrimSuffix(name, queuedSuffix)
		default:
			continue
		}
		if !validID(id) {
			b.quarantine(name, "bad file name", nil)
			continue
		}
		n := byID[id]
		if n == nil {
			n = &names{}
			byID[id] = n
		}
		if isOpen {
			n.open = name
		} else {
			n.queued = name
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var n, cut int64
	for _, id := range ids {
		nm := byID[id]
		name := nm.queued
		if nm.open != "" && nm.queued != "" {
			b.quarantine(nm.open, "duplicate of "+nm.queued, nil)
		} else if nm.open != "" {
			name = nm.open
		}
		if c, k := b.recoverFile(name); c != nil {
			n++
			cut += k
		}
	}
	if len(ids) > 0 {
		if err := syncDir(b.dir); err != nil {
			b.log.Warn("recovery: folder sync failed", "err", err)
		}
		st := b.Status()
		b.log.Info("recovered buffer", "chunks", n, "bytes", st.TotalBytes, "cut_bytes", cut, "quarantined", st.Quarantined)
	}
}

// recoverFile reads one chunk file, cuts its tail at the last good frame,
// seals it if it was open, and queues it. It returns the chunk (nil when the
// file was quarantined, removed or vanished) and the bytes it cut.
func (b *Buffer) recoverFile(name string) (*chunk, int64) {
	p := filepath.Join(b.dir, name)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			b.quarantine(name, "cannot open", err)
		}
		return nil, 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.quarantine(name, "cannot stat", err)
		return nil, 0
	}
	size := st.Size()
	br := bufio.NewReaderSize(f, 64<<10)
	h, hsize, err := readHeader(br)
	if err != nil {
		b.quarantine(name, "unreadable header", err)
		return nil, 0
	}
	id, _, _ := strings.Cut(name, ".")
	if h.ID != id {
		b.quarantine(name, "header id "+h.ID+" differs from the file name", nil)
		return nil, 0
	}
	c := newChunk(b.dir, h)
	c.dataOff = hsize
	close(c.ready)
	fr := frameReader{r: br, off: hsize, limit: -1}
	good := hsize
	var bad error
	var m dedup.Mark
	for {
		pl, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			bad = err
			break
		}
		minT := c.minTime.Load()
		mark, msg, err := splitMark(pl, h.Version)
		if err == nil && mark != nil {
			_, err = dedup.ParseMark(mark, &m)
			if err != nil {
				err = corruptf("%v", err)
			}
		}
		var n int
		if err == nil {
			_, n, err = walkPayload(msg, func(_ []byte, t event.Time, _ []byte) error {
				minT = min(minT, int64(t))
				return nil
			})
		}
		if err != nil {
			bad = err
			break
		}
		if mark != nil {
			c.marked++
			c.markBytes += int64(len(mark))
			if b.dedup != nil {
				b.dedup.Found(&m) // the frame is whole: its mark counts
			}
		}
		c.minTime.Store(minT)
		c.frames++
		c.events.Add(int64(n))
		good = fr.off
	}
	if bad != nil && !errors.Is(bad, errCorrupt) {
		// An I/O error is not evidence of a torn tail: keep every byte.
		b.quarantine(name, "read error", bad)
		return nil, 0
	}
	var cut int64
	if good < size {
		// Bytes after the last non-zero one are the zero-filled
		// preallocation of an open chunk (FORMAT.md): no data, not counted.
		nonZeroEnd := lastNonZero(f, good, size)
		if err := f.Truncate(good); err != nil {
			b.quarantine(name, "cannot cut the torn tail", err)
			return nil, 0
		}
		if err := datasync(f); err != nil {
			b.log.Warn("recovery: sync after cut failed", "file", name, "err", err)
		}
		if nonZeroEnd == good {
			b.log.Debug("recovery: removed the preallocated tail", "file", name, "bytes", size-good)
		} else {
			cut = nonZeroEnd - good
			b.mu.Lock()
			b.cutBytes += cut
			b.mu.Unlock()
			b.m.cutBytes.Add(float64(cut))
			b.log.Warn("recovery: cut a torn or corrupt tail", "file", name, "offset", good, "bytes_cut", cut,
				"frames_kept", c.frames, "why", bad)
		}
	}
	if c.frames == 0 {
		f.Close()
		if err := os.Remove(p); err != nil {
			b.log.Error("recovery: cannot remove a chunk without events", "file", name, "err", err)
		} else {
			b.log.Info("recovery: removed a chunk without events", "file", name)
		}
		return nil, cut
	}
	c.size.Store(good)
	c.name = name
	if strings.HasSuffix(name, openSuffix) {
		qn := h.ID + queuedSuffix
		if err := os.Rename(p, filepath.Join(b.dir, qn)); err != nil {
			b.log.Error("recovery: cannot seal a chunk left open; delivering it under its old name", "file", name, "err", err)
		} else {
			c.name = qn
		}
	}
	observeID(h.ID)
	b.mu.Lock()
	if b.chunks[h.ID] != nil {
		b.mu.Unlock()
		return nil, cut
	}
	b.chunks[h.ID] = c
	b.total += good
	b.enqueueLocked(c)
	b.mu.Unlock()
	return c, cut
}

// quarantine moves a file the buffer cannot use to quarantine/, with a note.
func (b *Buffer) quarantine(name, reason string, cause error) {
	b.mu.Lock()
	b.quarCount++
	b.mu.Unlock()
	b.m.quarantined.Inc()
	msg := reason
	if cause != nil {
		msg += ": " + cause.Error()
	}
	if err := b.mkdirAll(b.quarDir); err != nil {
		b.log.Error("quarantine: cannot create the folder; file left in place", "file", name, "reason", msg, "err", err)
		return
	}
	if err := os.Rename(filepath.Join(b.dir, name), filepath.Join(b.quarDir, name)); err != nil {
		b.log.Error("quarantine: cannot move file; left in place", "file", name, "reason", msg, "err", err)
		return
	}
	note, _ := json.Marshal(map[string]string{"file": name, "reason": msg, "when": b.now().UTC().Format(time.RFC3339)})
	if err := os.WriteFile(filepath.Join(b.quarDir, name+".json"), append(note, '\n'), 0o644); err != nil {
		b.log.Warn("quarantine: cannot write note", "file", name, "err", err)
	}
	syncDir(b.quarDir)
	syncDir(b.dir)
	b.log.Error("quarantined an unreadable chunk file", "file", name, "reason", msg, "moved_to", b.quarDir)
}

// adoptNew queues chunks that appeared in the folder (Requeue) since the
// last look. Only the poller calls it.
func (b *Buffer) adoptNew() {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		b.log.Warn("rescan: cannot list the buffer folder", "err", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, queuedSuffix) || !e.Type().IsRegular() {
			continue
		}
		id := strings.TrimSuffix(name, queuedSuffix)
		if !validID(id) {
			continue
		}
		b.mu.Lock()
		known := b.chunks[id] != nil || b.closed
		b.mu.Unlock()
		if known {
			continue
		}
		if c, _ := b.recoverFile(name); c != nil {
			b.log.Info("picked up a requeued chunk", "chunk", c.id, "events", c.events.Load())
		}
	}
}

// lastNonZero returns the offset just after the last non-zero byte of f
// in [off, end), or off when there is none. A read error counts as data.
func lastNonZero(f *os.File, off, end int64) int64 {
	last := off
	buf := make([]byte, 64<<10)
	for p := off; p < end; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-p)], p)
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				last = p + int64(i) + 1
				break
			}
		}
		if err != nil && n == 0 {
			return end
		}
		p += int64(n)
	}
	return last
}
