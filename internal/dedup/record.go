package dedup

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/marutalog/maruta/internal/fsutil"
)

// The dedup record's bytes (buffer/FORMAT.md, "The dedup record").
const (
	recordMagic    = "MRTD"
	recordVersion  = 1
	recordHeadSize = 5
	entryHeadSize  = 8
	maxEntrySize   = 64 << 20
	recordName     = "record"
	minCompactSize = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is the append-only file that keeps the marks of chunks that left
// their buffer. Its methods are called with Store.rmu held.
type record struct {
	dir       string
	f         *os.File
	lock      *os.File
	size      int64 // bytes of whole entries
	compactAt int64
}

// openRecord locks dir, reads the record in it (cutting a torn tail) and
// calls fn for every mark. A missing record is created.
func openRecord(dir string, fn func(m *Mark)) (*record, int64, error) {
	if err := fsutil.MkdirAll(dir); err != nil {
		return nil, 0, fmt.Errorf("create dedup folder: %w", err)
	}
	lock, err := fsutil.LockDir(dir, "dedup folder")
	if err != nil {
		return nil, 0, err
	}
	r := &record{dir: dir, lock: lock}
	os.Remove(filepath.Join(dir, recordName+".tmp"))
	p := filepath.Join(dir, recordName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		r.close()
		return nil, 0, fmt.Errorf("open dedup record: %w", err)
	}
	r.f = f
	good, err := readRecord(f, fn)
	if err != nil && !errors.Is(err, errBadEntry) {
		r.close()
		return nil, 0, fmt.Errorf("read dedup record: %w", err)
	}
	st, serr := f.Stat()
	if serr != nil {
		r.close()
		return nil, 0, fmt.Errorf("read dedup record: %w", serr)
	}
	var cut int64
	if good == 0 {
		// New (or not even a whole head): start over.
		head := append([]byte(recordMagic), recordVersion)
		err := f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(head, 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = fsutil.SyncDir(dir)
		}
		if err != nil {
			r.close()
			return nil, 0, fmt.Errorf("create dedup record: %w", err)
		}
		cut, good = st.Size(), recordHeadSize
	} else if good < st.Size() {
		cut = st.Size() - good
		if err := f.Truncate(good); err != nil {
			r.close()
			return nil, 0, fmt.Errorf("cut the dedup record's torn tail: %w", err)
		}
		f.Sync()
	}
	r.size = good
	r.compactAt = max(2*good, minCompactSize)
	return r, cut, nil
}

var errBadEntry = errors.New("bad dedup record entry")

// readRecord calls fn for every mark of the record f and returns the
// offset after the last good entry (0 when the head is not whole).
func readRecord(f *os.File, fn func(m *Mark)) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 64<<10)
	var head [entryHeadSize]byte
	if _, err := io.ReadFull(br, head[:recordHeadSize]); err != nil || string(head[:4]) != recordMagic || head[4] != recordVersion {
		if err == nil {
			err = fmt.Errorf("%w: not a dedup record (head %q)", errBadEntry, head[:recordHeadSize])
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errBadEntry
		}
		return 0, err
	}
	off := int64(recordHeadSize)
	var body []byte
	var m Mark
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return off, errBadEntry
			}
			return off, err
		}
		n := binary.BigEndian.Uint32(head[:4])
		if n == 0 || n > maxEntrySize {
			return off, errBadEntry
		}
		body = slices.Grow(body[:0], int(n))[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return off, errBadEntry
			}
			return off, err
		}
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(head[4:]) {
			return off, errBadEntry
		}
		if rest, err := ParseMark(body, &m); err != nil || len(rest) != 0 {
			return off, errBadEntry
		}
		fn(&m)
		off += entryHeadSize + int64(n)
	}
}

// appendEntry appends m as one record entry to dst.
func appendEntry(dst []byte, m *Mark) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = AppendMark(dst, m)
	body := dst[start+entryHeadSize:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// write appends entries and syncs the file.
func (r *record) write(entries []byte) error {
	if len(entries) == 0 {
		return nil
	}
	if _, err := r.f.WriteAt(entries, r.size); err != nil {
		r.f.Truncate(r.size) // no half entry for the next one to follow
		return fmt.Errorf("write dedup record: %w", err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("sync dedup record: %w", err)
	}
	r.size += int64(len(entries))
	return nil
}

// compact rewrites the record with the entries keep returns for the marks
// it holds now, through record.tmp and a rename.
func (r *record) compact(keep func(marks []Mark) []Mark) error {
	var marks []Mark
	if _, err := readRecord(r.f, func(m *Mark) {
		c := *m
		c.IDs = make([][]byte, len(m.IDs))
		for i, id := range m.IDs {
			c.IDs[i] = slices.Clone(id)
		}
		marks = append(marks, c)
	}); err != nil {
		return fmt.Errorf("compact dedup record: %w", err)
	}
	out := append([]byte(recordMagic), recordVersion)
	for _, m := range keep(marks) {
		out = appendEntry(out, &m)
	}
	tmp := filepath.Join(r.dir, recordName+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("compact dedup record: %w", err)
	}
	_, err = f.Write(out)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(r.dir, recordName))
	}
	if err == nil {
		err = fsutil.SyncDir(r.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact dedup record: %w", err)
	}
	r.f.Close()
	r.f = f
	r.size = int64(len(out))
	r.compactAt = max(2*r.size, minCompactSize)
	return nil
}

func (r *record) close() {
	if r.f != nil {
		r.f.Close()
	}
	if r.lock != nil {
		r.lock.Close()
	}
}

// keepWindow is the compaction policy: marks older than window are
// dropped, batches whose every frame is in the record become one entry
// complete by itself, and only the newest entries holding max ids stay.
func keepWindow(marks []Mark, now time.Time, window time.Duration, max int) []Mark {
	type group struct {
		first int // index in out
		b     batchParts
	}
	groups := map[uint64]*group{}
	var out []Mark
	for _, m := range marks {
		if expired(m.At, now, window) {
			continue
		}
		if m.Parts == 0 {
			out = append(out, m)
			continue
		}
		g := groups[m.Batch]
		if g == nil {
			g = &group{first: len(out)}
			groups[m.Batch] = g
		}
		out = append(out, m)
		g.b.add(&m)
	}
	// A complete batch keeps one mark, complete by itself.
	drop := make([]bool, len(out))
	for i := range out {
		g := groups[out[i].Batch]
		if out[i].Parts == 0 || g == nil || !g.b.complete() {
			continue
		}
		if i == g.first {
			out[i].Part, out[i].Parts, out[i].Frame, out[i].Frames = 0, 0, 0, 0
		} else {
			drop[i] = true
		}
	}
	kept := out[:0]
	for i, m := range out {
		if !drop[i] {
			kept = append(kept, m)
		}
	}
	// The newest max ids (ordered by time, stable).
	slices.SortStableFunc(kept, func(a, b Mark) int { return cmp.Compare(a.At, b.At) })
	n, from := 0, len(kept)
	for from > 0 && n < max {
		from--
		n += len(kept[from].IDs)
	}
	return kept[from:]
}

func expired(atMs int64, now time.Time, window time.Duration) bool {
	return now.Sub(time.UnixMilli(atMs)) >= window
}
