package sinks

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// The record digest identifies what a chunk holds independently of how it
// is encoded: a Parquet file of the same chunk differs from one encoding to
// the next (the one-pass file plan depends on the files written before), the
// chunk's events do not. Definition (sinks/README.md, "Recognising a
// delivered object"): XXH64 with seed 0 over the events in the order Scan
// yields them, each event as
//
//	uvarint(len(tag)) tag  int64-big-endian(time in ns)  uvarint(len(record)) record
//
// where record is the event's msgpack map exactly as the chunk stores it,
// written as "xxh64:" and 16 lowercase hex digits. The number of events is
// kept beside it.
//
// XXH64, not SHA-256: the digest only tells this chunk from another one
// under the same object key (no adversary), and it runs on every event the
// S3 sink sends. BenchmarkRecordDigest (load 11 on 2 cores): SHA-256 cost
// about 290 ns per Docker-shaped record, XXH64 about 100 ns, beside the scan
// itself (about 120 ns) and Parquet encoding (about 1,800 ns on a quiet
// machine, BENCHMARKS.md).
const digestPrefix = "xxh64:"

// recordDigest accumulates the digest of a stream of events.
type recordDigest struct {
	h      *xxhash.Digest
	events int64
	hdr    []byte // the bytes of an event before its record
}

func newRecordDigest() *recordDigest { return &recordDigest{h: xxhash.New()} }

func (d *recordDigest) add(tag string, t event.Time, rec []byte) {
	h := binary.AppendUvarint(d.hdr[:0], uint64(len(tag)))
	h = append(h, tag...)
	h = binary.BigEndian.AppendUint64(h, uint64(t))
	d.hdr = binary.AppendUvarint(h, uint64(len(rec)))
	d.h.Write(d.hdr)
	d.h.Write(rec)
	d.events++
}

func (d *recordDigest) sum() string {
	return fmt.Sprintf("%s%016x", digestPrefix, d.h.Sum64())
}

// digestChunk is a Chunk whose Scan also computes the record digest: the
// first Scan that runs to its end sets digest and events; later scans
// (a two-pass encoding) pass through.
type digestChunk struct {
	delivery.Chunk
	digest string
	events int64
}

func (c *digestChunk) Scan(fn func(tag string, t event.Time, record []byte) error) error {
	if c.digest != "" {
		return c.Chunk.Scan(fn)
	}
	d := newRecordDigest()
	err := c.Chunk.Scan(func(tag string, t event.Time, rec []byte) error {
		d.add(tag, t, rec)
		return fn(tag, t, rec)
	})
	if err == nil {
		c.digest, c.events = d.sum(), d.events
	}
	return err
}

// ensure computes the digest with a scan of its own if no encoding scan ran
// to the end.
func (c *digestChunk) ensure() error {
	if c.digest != "" {
		return nil
	}
	return c.Scan(func(string, event.Time, []byte) error { return nil })
}

// Object metadata (x-amz-meta-…) that names the chunk an object holds.
const (
	metaChunk  = "maruta-chunk-id"
	metaDigest = "maruta-records-digest"
	metaEvents = "maruta-events"
)
