package sinktest

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"testing"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// Event is one event of a test chunk.
type Event struct {
	Tag    string
	Time   event.Time
	Record []byte
}

// Chunk is a sealed chunk held in memory. Scan hands out a scratch copy of
// each record, as a disk reader would, so code that keeps a record past the
// call sees it change.
type Chunk struct {
	delivery.ChunkInfo
	Events []Event
}

var _ delivery.Chunk = (*Chunk)(nil)

// Info implements delivery.Chunk.
func (c *Chunk) Info() delivery.ChunkInfo { return c.ChunkInfo }

// Scan implements delivery.Chunk.
func (c *Chunk) Scan(fn func(tag string, t event.Time, record []byte) error) error {
	buf := make([]byte, 0, 1024)
	for _, e := range c.Events {
		buf = append(buf[:0], e.Record...)
		if err := fn(e.Tag, e.Time, buf); err != nil {
			return err
		}
		clear(buf)
	}
	return nil
}

// FileChunk is a chunk streamed from a file of frames: tag length (u16),
// tag, time (i64), record length (u32), record. It is how a big chunk is
// read without holding it in memory.
type FileChunk struct {
	delivery.ChunkInfo
	Path string
}

var _ delivery.Chunk = (*FileChunk)(nil)

// Info implements delivery.Chunk.
func (c *FileChunk) Info() delivery.ChunkInfo { return c.ChunkInfo }

// Scan implements delivery.Chunk.
func (c *FileChunk) Scan(fn func(tag string, t event.Time, record []byte) error) error {
	f, err := os.Open(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	var hdr [8]byte
	var tagBuf, rec []byte
	tag := ""
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint16(hdr[:2]))
		if cap(tagBuf) < n {
			tagBuf = make([]byte, n)
		}
		if _, err := io.ReadFull(r, tagBuf[:n]); err != nil {
			return err
		}
		if string(tagBuf[:n]) != tag {
			tag = string(tagBuf[:n])
		}
		if _, err := io.ReadFull(r, hdr[:8]); err != nil {
			return err
		}
		t := event.Time(binary.LittleEndian.Uint64(hdr[:8]))
		if _, err := io.ReadFull(r, hdr[:4]); err != nil {
			return err
		}
		m := int(binary.LittleEndian.Uint32(hdr[:4]))
		if cap(rec) < m {
			rec = make([]byte, m)
		}
		rec = rec[:m]
		if _, err := io.ReadFull(r, rec); err != nil {
			return err
		}
		if err := fn(tag, t, rec); err != nil {
			return err
		}
	}
}

// WriteFileChunk writes events produced by gen into a new file under dir
// while more(count, bytes) holds, and returns the chunk (Bytes and Events
// set).
func WriteFileChunk(t testing.TB, dir string, info delivery.ChunkInfo, more func(n int, bytes int64) bool, gen func(i int) (string, event.Time, []byte)) *FileChunk {
	t.Helper()
	f, err := os.CreateTemp(dir, "chunk-*.bin")
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var total int64
	var hdr [8]byte
	n := 0
	for more(n, total) {
		tag, tm, rec := gen(n)
		binary.LittleEndian.PutUint16(hdr[:2], uint16(len(tag)))
		w.Write(hdr[:2])
		w.WriteString(tag)
		binary.LittleEndian.PutUint64(hdr[:8], uint64(tm))
		w.Write(hdr[:8])
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(rec)))
		w.Write(hdr[:4])
		w.Write(rec)
		total += int64(len(rec))
		n++
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info.Bytes, info.Events = total, int64(n)
	return &FileChunk{ChunkInfo: info, Path: f.Name()}
}
