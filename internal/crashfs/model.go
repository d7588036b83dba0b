package crashfs

import (
	"io"
	"math/rand/v2"
	"os"
	"time"
)

// pageSize is the unit in which unsynced file data is kept.
const pageSize = 4096

type page [pageSize]byte

// mnode is an inode of the model. Guarded by FS.mu.
type mnode struct {
	ino   uint64
	dir   bool
	perm  uint32
	mtime time.Time

	// Directories: the entries every request sees, and those that survive
	// a cut.
	live, durable map[string]*mnode

	// Files. The backing file f holds the durable content (dsize bytes).
	// The live content is: pages[p] where present; else the backing
	// file's bytes below low; else zeros. low is the smallest live size
	// since the last sync (bytes a truncation cut off read as zeros even
	// if the backing file still has them).
	f     *os.File
	size  int64
	dsize int64
	low   int64
	pages map[int64]*page

	// dirtySince is when the first write since the file's last sync came,
	// in the cut generation dirtyCut (Stats.MaxUnsynced).
	dirtySince time.Time
	dirtyCut   int
}

// changed reports whether a file has unsynced changes.
func (n *mnode) changed() bool {
	return len(n.pages) > 0 || n.size != n.dsize || n.low != n.dsize
}

// readBase fills dst with the live bytes at off that no unsynced write
// touched.
func (n *mnode) readBase(dst []byte, off int64) error {
	clear(dst)
	if off < n.low && n.f != nil {
		k := min(int64(len(dst)), n.low-off)
		if _, err := n.f.ReadAt(dst[:k], off); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// readAt reads the live content.
func (n *mnode) readAt(dst []byte, off int64) (int, error) {
	if off >= n.size {
		return 0, nil
	}
	k := int(min(int64(len(dst)), n.size-off))
	dst = dst[:k]
	for i := 0; i < k; {
		pos := off + int64(i)
		po := int(pos % pageSize)
		m := min(pageSize-po, k-i)
		if pg := n.pages[pos/pageSize]; pg != nil {
			copy(dst[i:i+m], pg[po:po+m])
		} else if err := n.readBase(dst[i:i+m], pos); err != nil {
			return i, err
		}
		i += m
	}
	return k, nil
}

// writeAt changes the live content.
func (n *mnode) writeAt(src []byte, off int64) error {
	for i := 0; i < len(src); {
		pos := off + int64(i)
		p := pos / pageSize
		po := int(pos % pageSize)
		m := min(pageSize-po, len(src)-i)
		pg := n.pages[p]
		if pg == nil {
			pg = new(page)
			if err := n.readBase(pg[:], p*pageSize); err != nil {
				return err
			}
			n.pages[p] = pg
		}
		copy(pg[po:po+m], src[i:i+m])
		i += m
	}
	n.size = max(n.size, off+int64(len(src)))
	n.mtime = time.Now()
	return nil
}

// truncate sets the live size.
func (n *mnode) truncate(size int64) {
	if size < n.size {
		for p, pg := range n.pages {
			start := p * pageSize
			switch {
			case start >= size:
				delete(n.pages, p)
			case start+pageSize > size:
				clear(pg[size-start:])
			}
		}
	}
	n.size = size
	n.low = min(n.low, size)
	n.mtime = time.Now()
}

// sync makes the live content durable.
func (n *mnode) sync() error {
	if !n.changed() {
		return nil
	}
	if n.low < n.dsize {
		if err := n.f.Truncate(n.low); err != nil {
			return err
		}
	}
	for p, pg := range n.pages {
		start := p * pageSize
		if start >= n.size {
			continue
		}
		if _, err := n.f.WriteAt(pg[:min(pageSize, n.size-start)], start); err != nil {
			return err
		}
	}
	if err := n.f.Truncate(n.size); err != nil {
		return err
	}
	clear(n.pages)
	n.dsize, n.low = n.size, n.size
	return nil
}

// unsyncedBytes is how many bytes of live content a cut would discard.
func (n *mnode) unsyncedBytes() int64 {
	b := int64(len(n.pages)) * pageSize
	if n.size > n.dsize {
		b = max(b, n.size-n.dsize)
	}
	return b
}

// discard drops every unsynced change and returns how many bytes it
// dropped.
func (n *mnode) discard() int64 {
	b := n.unsyncedBytes()
	clear(n.pages)
	n.size, n.low = n.dsize, n.dsize
	return b
}

// tear keeps the unsynced pages below a random offset, cut at that offset,
// and drops the rest; the size grows to the offset if that is past the
// durable size, and never shrinks (a truncation is not kept, though a kept
// page shows the zeros it left in that page). It reports the bytes dropped
// and whether it kept any.
func (n *mnode) tear(r *rand.Rand) (int64, bool, error) {
	if len(n.pages) == 0 {
		return n.discard(), false, nil
	}
	first := int64(-1)
	for p := range n.pages {
		if first < 0 || p < first {
			first = p
		}
	}
	lo, hi := first*pageSize, n.size
	if hi <= lo {
		return n.discard(), false, nil
	}
	cut := lo + r.Int64N(hi-lo+1)
	var kept int64
	for p, pg := range n.pages {
		start := p * pageSize
		end := min(start+pageSize, n.size, cut)
		if start >= end {
			continue
		}
		if _, err := n.f.WriteAt(pg[:end-start], start); err != nil {
			return 0, false, err
		}
		kept += end - start
	}
	newSize := max(n.dsize, min(cut, n.size))
	if newSize > n.dsize {
		if err := n.f.Truncate(newSize); err != nil {
			return 0, false, err
		}
	}
	dropped := max(n.unsyncedBytes()-kept, 0)
	clear(n.pages)
	n.size, n.dsize, n.low = newSize, newSize, newSize
	return dropped, kept > 0, nil
}

// drop releases an inode that did not survive a cut.
func (n *mnode) drop() {
	if n.f != nil {
		name := n.f.Name()
		n.f.Close()
		os.Remove(name)
		n.f = nil
	}
}
