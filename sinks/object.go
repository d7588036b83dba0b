package sinks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/sinks/encode"
)

// An objectStore is a transport that keeps each chunk as one object: a file
// of the local lake, an S3 object. objectSink does everything else (the
// key, encoding into a staged file, the two-pass retry of a Parquet plan
// miss, metrics, logs), so a new object store is put and nothing more.
type objectStore interface {
	// put stores the staged object o under o.key. It returns nil only once
	// the destination confirmed the whole object; storing the same key
	// again must not create a second copy (replace it, or refuse it with a
	// conditional put and recognise the object already there). Errors
	// follow delivery.Sink.Write: Permanent when retrying cannot help.
	// put counts and logs its own errors (metrics.errors by kind). It may
	// be called concurrently, for different keys or the same one.
	put(ctx context.Context, o *object) error
}

// A stager is an objectStore that chooses where objects are staged. Without
// one, objects are staged under <data_dir>/tmp/<output>/.
type stager interface {
	// stage creates the empty file the object for key is encoded into.
	stage(key string) (*os.File, error)
}

// object is a chunk encoded into a staged file, ready for put.
type object struct {
	key  string
	info delivery.ChunkInfo
	// file is the staged file, complete but not synced; its offset is
	// unspecified (read it with ReadAt, or Seek first).
	file *os.File
	size int64
	// contentType is the encoding's media type.
	contentType string
	// moved is set by a put that renamed file into place: discard then
	// leaves the name alone.
	moved bool
	// digest and events describe the chunk's records (digest.go), for
	// stores that name them (objectSink.digest).
	digest string
	events int64
}

// discard closes the staged file and removes it, unless put moved it.
func (o *object) discard() {
	o.file.Close()
	if !o.moved {
		os.Remove(o.file.Name())
	}
}

// objectSink is the delivery.Sink of an object store: each chunk becomes
// one object whose key is rendered from the chunk (the same chunk always
// gets the same key). Write encodes the chunk into a staged file (in one
// pass with the Parquet file plan; again in two passes when the chunk has
// a key outside it), then hands the file to the store's put.
//
// Write is safe for concurrent use. Close closes nothing of the store's:
// the buffer stops calling Write first.
type objectSink struct {
	*common
	store  objectStore
	kind   string // "file", "s3": error messages say "<kind> sink <output>"
	tmpDir string // where objects are staged without a stager
	// direct writes the staged file with O_DIRECT where possible: for files
	// that are not read back (directWriter).
	direct bool
	// digest computes the record digest while encoding (object.digest).
	digest bool
}

var _ delivery.Sink = (*objectSink)(nil)

// Write implements delivery.Sink. Key templates that cannot render are
// Permanent errors; staging and encoding errors are retryable; put decides
// about its own.
func (s *objectSink) Write(ctx context.Context, c delivery.Chunk) error {
	start := time.Now()
	defer func() { s.metrics.duration.Observe(since(start)) }()
	info := c.Info()
	key, err := s.keys.Render(info, s.enc.Ext())
	if err != nil {
		s.metrics.errors.WithLabelValues(kindOther).Inc()
		return delivery.Permanent(fmt.Errorf("%s sink %s: object key: %w", s.kind, s.name, err))
	}
	o, st, err := s.encodeObject(ctx, c, key, false)
	if errors.Is(err, encode.ErrPlanMiss) {
		s.log.Debug("chunk has keys outside the file plan: encoding it in two passes", "chunk", info.ID)
		s.metrics.replans.Inc()
		o, st, err = s.encodeObject(ctx, c, key, true)
	}
	s.metrics.columnsAdded.Add(float64(st.ColsAdded))
	st.ColsAdded = 0
	if err != nil {
		return err
	}
	defer o.discard()
	pstart := time.Now()
	err = s.store.put(ctx, o)
	s.metrics.upload.Observe(since(pstart))
	if err != nil {
		return err
	}
	s.metrics.delivered(o.size, st)
	s.size.observe(info.Bytes, o.size)
	s.logStats(info, st)
	s.log.Debug("chunk delivered", "chunk", info.ID, "key", key, "bytes", o.size, "rows", st.Rows)
	return nil
}

// encodeObject encodes c into a new staged file. On error nothing is left
// staged; encode.ErrPlanMiss and context errors come back as they are.
func (s *objectSink) encodeObject(ctx context.Context, c delivery.Chunk, key string, twoPass bool) (*object, encode.Stats, error) {
	var f *os.File
	var err error
	if sg, ok := s.store.(stager); ok {
		f, err = sg.stage(key)
	} else {
		f, err = os.CreateTemp(s.tmpDir, ".upload-*")
	}
	if err != nil {
		s.metrics.errors.WithLabelValues(kindIO).Inc()
		return nil, encode.Stats{}, fmt.Errorf("%s sink %s: stage: %w", s.kind, s.name, err)
	}
	o := &object{key: key, info: c.Info(), file: f, contentType: s.enc.ContentType()}
	dw := &directWriter{f: f} // through the page cache
	if s.direct {
		dw = newDirectWriter(f)
	}
	bw := bufio.NewWriterSize(dw, 1<<20)
	var dc *digestChunk
	if s.digest {
		dc = &digestChunk{Chunk: c}
		c = dc
	}
	st, err := s.enc.Encode(ctx, c, bw, twoPass)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		o.size, err = dw.finish()
	}
	if err == nil && dc != nil {
		err = dc.ensure()
		o.digest, o.events = dc.digest, dc.events
	}
	if err != nil {
		dw.closeDirect()
		o.discard()
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, encode.ErrPlanMiss) {
			return nil, st, err
		}
		s.metrics.errors.WithLabelValues(kindEncode).Inc()
		return nil, st, fmt.Errorf("%s sink %s: %w", s.kind, s.name, err)
	}
	return o, st, nil
}

// Close implements delivery.Sink.
func (s *objectSink) Close() error { return nil }
