package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// ChunkInfo describes a sealed chunk.
type ChunkInfo struct {
	// ID is the chunk id: time-ordered, unique per node, made of [0-9a-z]
	// only. The same chunk always has the same ID, across restarts, so object
	// keys built from it are deterministic.
	ID string
	// Output is the name of the output the chunk belongs to.
	Output string
	// Path is the output's path template with its tag placeholders
	// (${tag}, ${tag_parts[N]}) and record-key placeholders resolved. strftime
	// directives are left for the sink, to be rendered with Slice.
	Path string
	// Tag is a tag of the chunk's events (the first one appended). When the
	// path depends on the tag every event in the chunk yields the same Path,
	// but tags may still differ when the path does not use them.
	Tag string
	// Slice is the start of the chunk's time slice (timekey) in UTC. Every
	// event in the chunk has Slice <= time < Slice+timekey. Zero when the
	// output has no timekey.
	Slice time.Time
	// Keys holds the values of the buffer's chunk_keys (record keys), if any.
	Keys map[string]string
	// Created is when the chunk was opened.
	Created time.Time
	// Bytes is the size of the chunk's payloads (raw msgpack) and Events the
	// number of events in it.
	Bytes  int64
	Events int64
}

// Chunk is a sealed chunk on disk, read by a sink.
type Chunk interface {
	Info() ChunkInfo
	// Scan calls fn for every event in the chunk, in append order, streaming
	// from disk. tag and record are only valid during the call. An error from
	// fn stops the scan and is returned.
	Scan(fn func(tag string, t event.Time, record []byte) error) error
}

// Sink delivers chunks. Write is called by several flush workers at once,
// so a Sink must be safe for concurrent use.
type Sink interface {
	// Write delivers c. It returns nil only once the destination confirmed
	// the whole chunk (S3 2xx, file renamed and fsynced, forward ack).
	// Delivering the same chunk twice must not create a second copy where
	// the destination allows it (deterministic object keys).
	Write(ctx context.Context, c Chunk) error
	// Close releases resources. Write is not called after Close.
	Close() error
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that IsPermanent reports true: the buffer will not
// retry the chunk but move it to the dead-letter folder.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was made by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// SizeTarget is implemented by sinks that size their objects (the file and
// s3 sinks). TargetChunkBytes is the chunk size (msgpack bytes in the
// buffer) expected to encode to an object of the output's
// target_file_size, from the compression ratio measured on this output's
// deliveries; 0 when the output has no target_file_size. The buffer seals
// chunks at min(chunk_limit_size, this), and still after flush_interval,
// which stays the latest a file is written. Safe for concurrent use.
type SizeTarget interface {
	TargetChunkBytes() int64
}
