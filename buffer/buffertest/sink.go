package buffertest

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// Delivery is one event a RecordingSink received.
type Delivery struct {
	ChunkID string
	Tag     string
	Time    event.Time
	ID      string // the record's IDKey value ("" when absent)
	Record  []byte
}

// RecordingSink records every event of every chunk it accepts. Fail, when
// set, decides the outcome of each Write before the chunk is read (nil:
// accept). If File is set, the IDs of an accepted chunk are appended to it
// (one per line, "<chunk id> <event id> .") and fsynced before Write returns
// nil, so a crash test can tell what was confirmed; see ReadDelivered. It is
// safe for concurrent use.
type RecordingSink struct {
	IDKey string // record key holding an event id; default "id"
	Fail  func(c delivery.Chunk, attempt int) error
	File  string

	mu         sync.Mutex
	deliveries []Delivery
	attempts   map[string]int
	chunks     []delivery.ChunkInfo
	closed     bool
}

var _ delivery.Sink = (*RecordingSink)(nil)

// Write implements delivery.Sink.
func (s *RecordingSink) Write(ctx context.Context, c delivery.Chunk) error {
	info := c.Info()
	s.mu.Lock()
	if s.attempts == nil {
		s.attempts = map[string]int{}
	}
	s.attempts[info.ID]++
	attempt := s.attempts[info.ID]
	s.mu.Unlock()
	if s.Fail != nil {
		if err := s.Fail(c, attempt); err != nil {
			return err
		}
	}
	key := s.IDKey
	if key == "" {
		key = "id"
	}
	var got []Delivery
	err := c.Scan(func(tag string, t event.Time, rec []byte) error {
		d := Delivery{ChunkID: info.ID, Tag: tag, Time: t, Record: append([]byte(nil), rec...)}
		if v, ok, _ := msgpack.MapGet(rec, key, 16); ok {
			if s, _, _, err := msgpack.ReadBytes(v); err == nil {
				d.ID = string(s)
			}
		}
		got = append(got, d)
		return nil
	})
	if err != nil {
		return err
	}
	if int64(len(got)) != info.Events {
		return delivery.Permanent(fmt.Errorf("chunk %s: scanned %d events, Info says %d", info.ID, len(got), info.Events))
	}
	if s.File != "" {
		if err := appendIDs(s.File, got); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.deliveries = append(s.deliveries, got...)
	s.chunks = append(s.chunks, info)
	s.mu.Unlock()
	return nil
}

func appendIDs(file string, ds []Delivery) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// A leading newline ends a line a killed writer may have left half
	// written; the trailing " ." marks a whole line (ReadDelivered skips
	// the others).
	b := []byte{'\n'}
	for _, d := range ds {
		b = append(b, d.ChunkID...)
		b = append(b, ' ')
		b = append(b, d.ID...)
		b = append(b, " .\n"...)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Close implements delivery.Sink.
func (s *RecordingSink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Deliveries returns a copy of every event accepted so far.
func (s *RecordingSink) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Chunks returns the Info of every chunk accepted so far, in order.
func (s *RecordingSink) Chunks() []delivery.ChunkInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery.ChunkInfo(nil), s.chunks...)
}

// Attempts returns how often Write was called for a chunk id.
func (s *RecordingSink) Attempts(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[id]
}

// IDs counts the accepted events by event id.
func (s *RecordingSink) IDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.deliveries))
	for _, d := range s.deliveries {
		m[d.ID]++
	}
	return m
}

// Record builds a msgpack map record {"id": id, "log": log} plus extra
// string pairs.
func Record(id, log string, extra ...string) []byte {
	b := msgpack.AppendMapHeader(nil, 2+len(extra)/2)
	b = msgpack.AppendString(b, "id")
	b = msgpack.AppendString(b, id)
	b = msgpack.AppendString(b, "log")
	b = msgpack.AppendString(b, log)
	for i := 0; i+1 < len(extra); i += 2 {
		b = msgpack.AppendString(b, extra[i])
		b = msgpack.AppendString(b, extra[i+1])
	}
	return b
}
