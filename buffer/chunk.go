package buffer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

type chunkState uint8

const (
	stateOpen     chunkState = iota // in Buffer.open, taking appends
	stateSealing                    // out of Buffer.open, being closed and renamed
	stateQueued                     // sealed, in the delivery queue
	stateInflight                   // in Sink.Write
	stateGone                       // delivered, dropped or dead-lettered
)

func (s chunkState) String() string {
	return [...]string{"open", "sealing", "queued", "inflight", "gone"}[s]
}

// File name suffixes (FORMAT.md, "Folder layout").
const (
	openSuffix   = ".open.chunk"
	queuedSuffix = ".queued.chunk"
	tmpSuffix    = ".tmp"
)

// chunk is one chunk file. Lock order: Buffer.mu, then chunk.mu, then
// committer.mu; chunk.life is only taken with none of them held.
type chunk struct {
	id  string
	key string // key in Buffer.open
	hdr *header
	dir string

	// ready is closed once the file exists (or creation failed: createErr).
	ready     chan struct{}
	createErr error

	mu         sync.Mutex // serializes writes; guards f's content and the fields below
	f          *os.File
	closed     bool // no more writes
	frames     int64
	written    int64  // bytes written to the file
	zeroEnd    int64  // end of the zero-filled preallocation (fsync: always)
	coalesce   bool   // fsync: always: frames wait in pend for the commit round
	pend       []byte // frames not yet written
	pendFrames int64
	pendEvents int64
	pendMarked int64 // of pendFrames, those with a dedup mark
	pendMarkB  int64 // bytes of their marks
	pendErr    error
	dataOff    int64 // size of preamble + header
	marked     int64 // frames with a dedup mark
	markBytes  int64 // bytes of their marks

	size    atomic.Int64 // bytes in the file, including pending frames
	lost    atomic.Int64 // pending bytes a failed write lost (still in Buffer.total)
	events  atomic.Int64
	minTime atomic.Int64 // oldest event time; math.MaxInt64 = none
	failed  atomic.Bool  // a write or sync failed: seal it, append elsewhere

	life    sync.RWMutex // shared by a sync, exclusive to close the file
	fclosed bool
	syncErr error

	dirty   bool   // guarded by committer.mu: written since a round took it
	syncing *round // guarded by committer.mu: the round in flight that syncs it

	// Guarded by Buffer.mu.
	state     chunkState
	name      string // current file name in dir
	hidx      int    // index in the queue heap
	deadline  time.Time
	notBefore time.Time
	attempts  int
	firstFail time.Time
	lastErr   string
}

var _ delivery.Chunk = (*chunk)(nil)

func newChunk(dir string, h *header) *chunk {
	c := &chunk{id: h.ID, hdr: h, dir: dir, ready: make(chan struct{}), hidx: -1}
	c.minTime.Store(math.MaxInt64)
	return c
}

// create makes the file: the header is written to <id>.open.tmp, which is
// then renamed to <id>.open.chunk, so a crash never leaves a chunk with a
// torn header. When durable, the file and the folder are synced, so the
// chunk's directory entry survives a power loss before any append to it is
// acknowledged.
func (c *chunk) create(durable bool) error {
	c.name = c.id + openSuffix
	p := filepath.Join(c.dir, c.name)
	tmp := filepath.Join(c.dir, c.id+".open"+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create chunk: %w", err)
	}
	fail := func(what string, err error) error {
		f.Close()
		os.Remove(tmp)
		os.Remove(p)
		return fmt.Errorf("%s: %w", what, err)
	}
	hb := appendHeader(nil, c.hdr)
	if _, err := f.Write(hb); err != nil {
		return fail("write chunk header", err)
	}
	if durable {
		if err := datasync(f); err != nil {
			return fail("sync chunk header", err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		return fail("create chunk", err)
	}
	if durable {
		if err := syncDir(c.dir); err != nil {
			return fail("sync buffer folder", err)
		}
	}
	c.f = f
	c.dataOff = int64(len(hb))
	c.written = c.dataOff
	c.zeroEnd = c.dataOff
	c.size.Store(c.dataOff)
	return nil
}

// writeLocked appends one encoded frame holding n events, the oldest at
// minT, and a dedup mark of markLen bytes (0: none). The caller holds c.mu
// and checked that c is not closed. A
// coalescing chunk (fsync: always) only copies the frame into c.pend: the
// next commit round writes every pending frame with one pwrite before its
// fdatasync (nothing is acknowledged before that anyway). Other chunks
// write at once, so an acknowledged append survives a process crash.
func (c *chunk) writeLocked(frame []byte, n int, minT event.Time, markLen int) error {
	if c.coalesce {
		if c.pend == nil {
			if p, ok := pendPool.Get().(*[]byte); ok {
				c.pend = (*p)[:0]
			}
		}
		c.pend = append(c.pend, frame...)
		c.pendFrames++
		c.pendEvents += int64(n)
		if markLen > 0 {
			c.pendMarked++
			c.pendMarkB += int64(markLen)
		}
	} else {
		off := c.written
		if _, err := c.f.WriteAt(frame, off); err != nil {
			// Do not leave half a frame behind for a later frame to follow.
			c.f.Truncate(off)
			c.failed.Store(true)
			return fmt.Errorf("append to chunk %s: %w", c.id, err)
		}
		c.written += int64(len(frame))
	}
	c.size.Add(int64(len(frame)))
	c.frames++
	c.events.Add(int64(n))
	if markLen > 0 {
		c.marked++
		c.markBytes += int64(markLen)
	}
	for {
		old := c.minTime.Load()
		if int64(minT) >= old || c.minTime.CompareAndSwap(old, int64(minT)) {
			break
		}
	}
	return nil
}

// preallocate turns on zero-filling ahead of the write position for
// coalescing chunks (a variable so benchmarks can compare).
var preallocate = true

// preallocStep is how far ahead a coalescing chunk is zero-filled.
const preallocStep = 1 << 20

// preallocMaxRound is the largest round (bytes of pending frames) that
// zero-fills ahead.
const preallocMaxRound = 64 << 10

var zeros = make([]byte, 64<<10)

// writeZeros writes n zero bytes at off.
func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// maxKeptPend is the largest pending-frames buffer a chunk keeps between
// commit rounds.
const maxKeptPend = 32 << 20

// pendPool passes the pending-frames buffers of sealed chunks on to new
// ones.
var pendPool sync.Pool

// flushPendLocked writes the pending frames. On failure they are forgotten
// (their appends fail with the round) and the chunk is marked failed.
func (c *chunk) flushPendLocked() error {
	if c.pendErr != nil {
		return c.pendErr
	}
	if len(c.pend) == 0 {
		return nil
	}
	end := c.written + int64(len(c.pend))
	_, err := c.f.WriteAt(c.pend, c.written)
	if err == nil && preallocate && end > c.zeroEnd && len(c.pend) < preallocMaxRound {
		// Zero-fill ahead: later rounds then overwrite allocated, already
		// written blocks, so their fdatasync has no metadata to commit
		// (measured about 2x faster on ext4). This round pays for the size
		// change once per preallocStep. Large rounds skip it: the zeros
		// would double the bytes written to the page cache and the disk,
		// which then costs more than the metadata commit saves.
		err = writeZeros(c.f, end, preallocStep)
		if err == nil {
			c.zeroEnd = end + preallocStep
		}
	}
	if err != nil {
		c.f.Truncate(c.written)
		c.zeroEnd = c.written
		c.failed.Store(true)
		lost := int64(len(c.pend))
		c.size.Add(-lost)
		c.lost.Add(lost)
		c.frames -= c.pendFrames
		c.events.Add(-c.pendEvents)
		c.marked -= c.pendMarked
		c.markBytes -= c.pendMarkB
		c.pendErr = fmt.Errorf("append to chunk %s: %w", c.id, err)
	} else {
		c.written += int64(len(c.pend))
	}
	// Keep the capacity for the next round (a busy chunk needs about as
	// much every round: growing it again from nothing copied every frame
	// twice more); closeFile lets it go, so the memory is bounded by one
	// round's frames per open chunk.
	c.pend = c.pend[:0]
	if cap(c.pend) > maxKeptPend {
		c.pend = nil
	}
	c.pendFrames, c.pendEvents, c.pendMarked, c.pendMarkB = 0, 0, 0, 0
	return c.pendErr
}

// sync makes c's writes durable: pending frames are written, then the file
// is fdatasynced. After c's file was closed it reports the result of the
// final sync done by closeFile.
func (c *chunk) sync() error {
	c.mu.Lock()
	err := c.flushPendLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.life.RLock()
	defer c.life.RUnlock()
	if c.fclosed {
		return c.syncErr
	}
	if err := datasync(c.f); err != nil {
		c.failed.Store(true)
		return fmt.Errorf("sync chunk %s: %w", c.id, err)
	}
	return nil
}

// closeFile stops appends, writes pending frames, syncs (when durable) and
// closes the file.
func (c *chunk) closeFile(durable bool) error {
	c.mu.Lock()
	c.closed = true
	perr := c.flushPendLocked()
	if c.pend != nil {
		p := c.pend
		pendPool.Put(&p)
		c.pend = nil
	}
	c.mu.Unlock()
	c.life.Lock()
	defer c.life.Unlock()
	if c.fclosed || c.f == nil {
		return c.syncErr
	}
	err := perr
	if err == nil && c.zeroEnd > c.written {
		// Cut the preallocated zeros: a sealed chunk ends at its last frame.
		if err = c.f.Truncate(c.written); err != nil {
			err = fmt.Errorf("truncate chunk %s: %w", c.id, err)
		}
	}
	if durable && err == nil {
		if err = datasync(c.f); err != nil {
			err = fmt.Errorf("sync chunk %s: %w", c.id, err)
		}
	}
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close chunk %s: %w", c.id, cerr)
	}
	c.fclosed = true
	c.syncErr = err
	return err
}

// payloadBytes is the size of the chunk's payloads without their marks.
func (c *chunk) payloadBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size.Load() - c.dataOff - frameHeadSize*c.frames - c.markBytes
}

// hasMarks reports whether a frame of the chunk has a dedup mark.
func (c *chunk) hasMarks() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.marked > 0
}

// Info describes the chunk. It is meant for sealed chunks.
func (c *chunk) Info() delivery.ChunkInfo {
	h := c.hdr
	info := delivery.ChunkInfo{
		ID:      h.ID,
		Output:  h.Output,
		Path:    h.Path,
		Tag:     h.Tag,
		Keys:    h.Keys,
		Created: h.Created,
		Bytes:   c.payloadBytes(),
		Events:  c.events.Load(),
	}
	if h.Timekey > 0 {
		info.Slice = time.Unix(h.Slice, 0).UTC()
	}
	return info
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// Scan streams the chunk's events from its file, one frame in memory at a
// time. A corrupt frame stops the scan with an error that is
// delivery.Permanent (the chunk goes to the dead-letter folder).
func (c *chunk) Scan(fn func(tag string, t event.Time, record []byte) error) error {
	c.mu.Lock()
	end := c.size.Load()
	c.mu.Unlock()
	// c.name changes only while the chunk is sealing; a sink sees a sealed
	// chunk, whose name stays put until Write returned.
	return scanFile(filepath.Join(c.dir, c.name), c.hdr.Version, c.dataOff, end, fn)
}

// eachMark calls fn for the dedup mark of every frame of the chunk file
// that has one (m is valid only during the call). The file has been
// delivered (and read whole) before; a bad frame is an error.
func eachMark(path string, version byte, off, end int64, fn func(m *dedup.Mark)) error {
	var m dedup.Mark
	return eachFrame(path, off, end, func(p []byte) error {
		mark, _, err := splitMark(p, version)
		if err != nil || mark == nil {
			return err
		}
		if _, err := dedup.ParseMark(mark, &m); err != nil {
			return corruptf("%v", err)
		}
		fn(&m)
		return nil
	})
}

func scanFile(path string, version byte, off, end int64, fn func(tag string, t event.Time, record []byte) error) error {
	var tag string
	return eachFrame(path, off, end, func(p []byte) error {
		_, msg, err := splitMark(p, version)
		if err != nil {
			return err
		}
		_, _, err = walkPayload(msg, func(tb []byte, t event.Time, rec []byte) error {
			if string(tb) != tag {
				tag = string(tb)
			}
			return fn(tag, t, rec)
		})
		return err
	})
}

// eachFrame calls fn with the payload of every frame of the chunk file
// from offset off up to end (-1: the end of the file), one frame in memory
// at a time. A corrupt frame (or an errCorrupt from fn) stops it with an
// error that is delivery.Permanent.
func eachFrame(path string, off, end int64, fn func(payload []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open chunk: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek chunk: %w", err)
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	fr := frameReader{r: br, off: off, limit: end}
	for {
		p, err := fr.next()
		if err == io.EOF {
			if end >= 0 && fr.off < end {
				return delivery.Permanent(corruptf("%s: ends at %d, expected %d", path, fr.off, end))
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, errCorrupt) {
				return delivery.Permanent(fmt.Errorf("%s at offset %d: %w", path, fr.off, err))
			}
			return fmt.Errorf("read chunk %s: %w", path, err)
		}
		if err := fn(p); err != nil {
			if errors.Is(err, errCorrupt) {
				return delivery.Permanent(fmt.Errorf("%s at offset %d: %w", path, fr.off, err))
			}
			return err
		}
	}
}
