package sinks

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// directWriter writes a new file with O_DIRECT where the file system allows
// it: the bytes go from maruta's buffer to the disk without being copied
// into the page cache. Lake files are written once and not read back by
// maruta, so caching them only costs a copy per byte (most of the CPU a
// large jsonl output costs) and evicts the host's useful cache. Where
// O_DIRECT is not available (tmpfs, other systems) or refused, it writes
// through the page cache as usual.
//
// Writes are staged in a block-aligned buffer and written a whole number
// of blocks at a time; finish writes the last, zero-padded block and cuts
// the file to its real size. The caller still fsyncs the file (size and
// extents). &directWriter{f: f} writes through the page cache only (for
// staged files that are read back). Not safe for concurrent use.
type directWriter struct {
	f     *os.File // the file as created: fallback writes, truncate, sync
	d     *os.File // the same file opened with O_DIRECT; nil: buffered
	stage []byte   // block-aligned staging buffer (direct only)
	n     int      // bytes in stage
	off   int64    // bytes handed to the file (the offset of stage[0])
}

// directBlock is the alignment of O_DIRECT buffers, lengths and offsets:
// the page size, a multiple of every logical block size in use.
const directBlock = 4096

const directStage = 1 << 20

var stagePool = sync.Pool{New: func() any {
	b := make([]byte, directStage+directBlock)
	skip := int((directBlock - uintptr(unsafe.Pointer(&b[0]))%directBlock) % directBlock)
	b = b[skip : skip+directStage]
	return &b
}}

// newDirectWriter writes f (a new, empty file) with O_DIRECT when possible.
func newDirectWriter(f *os.File) *directWriter {
	w := &directWriter{f: f}
	if oDirect != 0 {
		if d, err := os.OpenFile(f.Name(), os.O_WRONLY|oDirect, 0); err == nil {
			w.d = d
			w.stage = *(stagePool.Get().(*[]byte))
		}
	}
	return w
}

func aligned(p []byte) bool { return uintptr(unsafe.Pointer(&p[0]))%directBlock == 0 }

// Write implements io.Writer.
func (w *directWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.d == nil {
			n, err := w.f.WriteAt(p, w.off)
			w.off += int64(n)
			return written + n, err
		}
		// Whole aligned blocks (bufio.Writer's full buffer) go out as they
		// are; the rest is staged.
		if w.n == 0 && len(p) >= directBlock && aligned(p) {
			k := len(p) &^ (directBlock - 1)
			if err := w.writeBlocks(p[:k]); err != nil {
				return written, err
			}
			p = p[k:]
			written += k
			continue
		}
		c := copy(w.stage[w.n:], p)
		w.n += c
		p = p[c:]
		written += c
		if w.n == len(w.stage) {
			if err := w.writeBlocks(w.stage); err != nil {
				return written, err
			}
			w.n = 0
		}
	}
	return written, nil
}

// writeBlocks writes b (whole blocks, aligned) at w.off. If the file
// system refuses the direct write, b and everything after it go through
// the page cache.
func (w *directWriter) writeBlocks(b []byte) error {
	_, err := w.d.WriteAt(b, w.off)
	if errors.Is(err, syscall.EINVAL) {
		_, err = w.f.WriteAt(b, w.off)
		w.closeDirect()
	}
	if err == nil {
		w.off += int64(len(b))
	}
	return err
}

// finish writes what is staged and returns the file's size. The file is
// then complete but not synced.
func (w *directWriter) finish() (int64, error) {
	if w.d == nil || w.n == 0 {
		w.closeDirect()
		return w.off, nil
	}
	size := w.off + int64(w.n)
	pad := (directBlock - w.n%directBlock) % directBlock
	clear(w.stage[w.n : w.n+pad])
	err := w.writeBlocks(w.stage[:w.n+pad])
	w.n = 0
	if err == nil && pad > 0 {
		err = w.f.Truncate(size)
	}
	w.closeDirect()
	return size, err
}

// closeDirect closes the O_DIRECT descriptor and gives the stage back.
// Call it also when the file is abandoned.
func (w *directWriter) closeDirect() {
	if w.d == nil {
		return
	}
	w.d.Close()
	w.d = nil
	s := w.stage[:directStage]
	stagePool.Put(&s)
	w.stage, w.n = nil, 0
}
