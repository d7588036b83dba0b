package buffer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/fsutil"
)

// Dead-letter file names (FORMAT.md, "Dead letters").
const (
	deadSuffix = ".chunk"
	noteSuffix = ".json"
)

// DeadLetter describes a chunk in a dead-letter folder.
type DeadLetter struct {
	ID      string            `json:"id"`
	Output  string            `json:"output"`
	Path    string            `json:"path"`
	Tag     string            `json:"tag"`
	Slice   time.Time         `json:"slice,omitzero"`
	Keys    map[string]string `json:"keys,omitempty"`
	Created time.Time         `json:"created"`
	Bytes   int64             `json:"bytes"`  // size of the chunk file
	Events  int64             `json:"events"` //
	// Reason is permanent, retries_exhausted, corrupt or unknown (no note).
	Reason   string    `json:"reason"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	When     time.Time `json:"when,omitzero"` // when it was dead-lettered
	// File is the chunk file's path.
	File string `json:"-"`
}

// deadLetter moves an in-flight chunk intact to the dead-letter folder with
// a note saying why. If the move fails the chunk is retried later instead.
func (b *Buffer) deadLetter(c *chunk, reason string, cause error) {
	events, size := c.events.Load(), c.size.Load()
	// Its requests are stored (here): a resend stays a duplicate.
	b.keepMarks(c)
	err := b.mkdirAll(b.deadDir)
	if err == nil {
		err = moveFile(filepath.Join(b.dir, c.name), b.deadDir, c.id+deadSuffix)
	}
	if err != nil {
		b.log.Error("cannot move chunk to the dead-letter folder; will retry delivery", "chunk", c.id,
			"reason", reason, "err", err)
		b.mu.Lock()
		b.inflight--
		c.notBefore = b.now().Add(b.backoff(max(c.attempts, 1)))
		b.enqueueBackLocked(c)
		b.mu.Unlock()
		return
	}
	info := c.Info()
	note := DeadLetter{
		ID: c.id, Output: info.Output, Path: info.Path, Tag: info.Tag, Slice: info.Slice, Keys: info.Keys,
		Created: info.Created, Bytes: size, Events: events, Reason: reason, Error: cause.Error(),
		Attempts: c.attempts, When: b.now().UTC(),
	}
	if err := writeNote(b.deadDir, c.id, &note); err != nil {
		b.log.Warn("dead letter: cannot write the note", "chunk", c.id, "err", err)
	}
	if b.mode != config.FsyncOff {
		syncDir(b.deadDir)
		syncDir(b.dir)
	}
	b.m.deadChunks.WithLabelValues(reason).Inc()
	b.m.deadEvents.WithLabelValues(reason).Add(float64(events))
	b.mu.Lock()
	b.inflight--
	b.deadCount++
	b.forgetLocked(c)
	b.mu.Unlock()
	b.log.Error("chunk moved to the dead-letter folder", "chunk", c.id, "reason", reason, "events", events,
		"bytes", size, "attempts", c.attempts, "err", cause, "dir", b.deadDir)
}

func writeNote(dir, id string, note *DeadLetter) error {
	data, err := json.MarshalIndent(note, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, id+noteSuffix+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync() // the caller's folder fsync then keeps a whole note
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, id+noteSuffix))
}

// syncDir fsyncs a folder so that renames and new entries in it are durable.
var syncDir = fsutil.SyncDir

// mkdirAll creates a folder; unless the buffer never fsyncs, the chain up
// to it is made durable first (FORMAT.md, "Write path and durability").
func (b *Buffer) mkdirAll(dir string) error {
	if b.mode == config.FsyncOff {
		return os.MkdirAll(dir, 0o755)
	}
	return fsutil.MkdirAll(dir)
}

// moveFile moves src to dir/name: a rename, or across file systems a copy
// to dir/name.tmp (fsynced), a rename and the removal of src.
func moveFile(src, dir, name string) error {
	dst := filepath.Join(dir, name)
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(dir, strings.TrimSuffix(name, filepath.Ext(name))+tmpSuffix)
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return os.Remove(src)
}

// ListDeadLetters lists the chunks in a dead-letter folder, oldest first. A
// folder that does not exist holds none. Chunks without a note are listed
// with Reason "unknown" and their sizes counted from the file.
func ListDeadLetters(dir string) ([]DeadLetter, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	var out []DeadLetter
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, deadSuffix)
		if !ok || !validID(id) {
			continue
		}
		d, err := readDeadLetter(dir, id)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func readDeadLetter(dir, id string) (DeadLetter, error) {
	file := filepath.Join(dir, id+deadSuffix)
	var d DeadLetter
	if data, err := os.ReadFile(filepath.Join(dir, id+noteSuffix)); err == nil {
		if err := json.Unmarshal(data, &d); err != nil {
			d = DeadLetter{}
		}
	}
	d.ID, d.File = id, file
	if d.Reason != "" {
		return d, nil
	}
	// No usable note: read what the chunk itself says.
	d.Reason = "unknown"
	f, err := os.Open(file)
	if err != nil {
		return d, fmt.Errorf("read dead letter %s: %w", id, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		d.Bytes = st.Size()
	}
	br := bufio.NewReaderSize(f, 64<<10)
	h, hsize, err := readHeader(br)
	if err != nil {
		d.Error = err.Error()
		return d, nil
	}
	d.Output, d.Path, d.Tag, d.Keys, d.Created = h.Output, h.Path, h.Tag, h.Keys, h.Created
	if h.Timekey > 0 {
		d.Slice = time.Unix(h.Slice, 0).UTC()
	}
	fr := frameReader{r: br, off: hsize, limit: -1}
	for {
		p, err := fr.next()
		if err != nil {
			if err != io.EOF {
				d.Error = err.Error()
			}
			break
		}
		_, msg, err := splitMark(p, h.Version)
		if err == nil {
			var n int
			_, n, err = walkPayload(msg, nil)
			d.Events += int64(n)
		}
		if err != nil {
			d.Error = err.Error()
			break
		}
	}
	return d, nil
}

// Requeue moves dead-lettered chunks back into a buffer folder to be sent
// again; ids nil or empty means every chunk in deadDir. A running Buffer on
// bufferDir picks them up within its rescan interval, a stopped one at its
// next start. It returns how many chunks it moved, and an error naming the
// ids it could not move (it still moves the others).
func Requeue(deadDir, bufferDir string, ids []string) (int, error) {
	if len(ids) == 0 {
		all, err := ListDeadLetters(deadDir)
		if err != nil {
			return 0, err
		}
		for _, d := range all {
			ids = append(ids, d.ID)
		}
	}
	if err := fsutil.MkdirAll(bufferDir); err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	var errs []error
	n := 0
	for _, id := range ids {
		if !validID(id) {
			errs = append(errs, fmt.Errorf("requeue %q: not a chunk id", id))
			continue
		}
		src := filepath.Join(deadDir, id+deadSuffix)
		if err := moveFile(src, bufferDir, id+queuedSuffix); err != nil {
			errs = append(errs, fmt.Errorf("requeue %s: %w", id, err))
			continue
		}
		if err := syncDir(bufferDir); err != nil {
			errs = append(errs, fmt.Errorf("requeue %s: %w", id, err))
		}
		os.Remove(filepath.Join(deadDir, id+noteSuffix))
		n++
	}
	syncDir(deadDir)
	return n, errors.Join(errs...)
}

// ReadChunkFile streams the events of a chunk file (any state: open, queued,
// dead-lettered) for tools and tests; it stops at the first bad frame and
// returns its error.
func ReadChunkFile(path string, fn func(tag string, t event.Time, record []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read chunk file: %w", err)
	}
	h, hsize, err := readHeader(bufio.NewReader(f))
	f.Close()
	if err != nil {
		return fmt.Errorf("read chunk file %s: %w", path, err)
	}
	return scanFile(path, h.Version, hsize, -1, fn)
}
