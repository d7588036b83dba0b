package sinks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/marutalog/maruta/internal/delivery"
)

// FileSink writes each chunk as one file of the lake layout under a local
// folder: encoded into a temporary file (".<name>.<random>.tmp") in the
// target folder, fsynced, renamed to its final name and the folder fsynced.
// A chunk written again replaces its file atomically, so the same chunk
// never yields two files. It is the embedded default output of `maruta run`.
//
// Write is safe for concurrent use; Close does nothing.
type FileSink struct {
	*common
}

var _ delivery.Sink = (*FileSink)(nil)

func newFileSink(opts Options) (*FileSink, error) {
	f := opts.Output.File
	c, err := newCommon(opts, &f.Encoding, f.Path, f.ObjectKey, f.Buffer.ChunkKeys, filepath.Join(opts.DataDir, "tmp"))
	if err != nil {
		return nil, err
	}
	return &FileSink{common: c}, nil
}

// Write encodes c into its file. Errors are retryable except those of
// templates, which are Permanent.
func (s *FileSink) Write(ctx context.Context, c delivery.Chunk) (err error) {
	start := time.Now()
	defer func() { s.metrics.duration.Observe(since(start)) }()
	info := c.Info()
	path, err := s.keys.render(info, s.enc.ext())
	if err != nil {
		s.metrics.errors.WithLabelValues(kindOther).Inc()
		return delivery.Permanent(fmt.Errorf("file sink %s: object key: %w", s.name, err))
	}
	size, st, err := s.writeFile(ctx, c, path, false)
	if errors.Is(err, errPlanMiss) {
		s.log.Debug("chunk has keys outside the file plan: encoding it in two passes", "chunk", info.ID)
		s.metrics.replans.Inc()
		size, st, err = s.writeFile(ctx, c, path, true)
	}
	s.metrics.columnsAdded.Add(float64(st.colsAdded))
	st.colsAdded = 0
	if err != nil {
		return err
	}
	s.metrics.delivered(size, st)
	s.size.observe(info.Bytes, size)
	s.logStats(info, st)
	s.log.Debug("chunk written", "chunk", info.ID, "file", path, "bytes", size, "rows", st.rows)
	return nil
}

func (s *FileSink) writeFile(ctx context.Context, c delivery.Chunk, path string, twoPass bool) (int64, encodeStats, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.metrics.errors.WithLabelValues(kindIO).Inc()
		return 0, encodeStats{}, fmt.Errorf("file sink %s: %w", s.name, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		s.metrics.errors.WithLabelValues(kindIO).Inc()
		return 0, encodeStats{}, fmt.Errorf("file sink %s: %w", s.name, err)
	}
	tmp := f.Name()
	committed := false
	dw := newDirectWriter(f)
	defer func() {
		if !committed {
			dw.closeDirect()
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(dw, 1<<20)
	st, err := s.enc.encode(ctx, c, bw, twoPass)
	if err == nil {
		err = bw.Flush()
	}
	var size int64
	if err == nil {
		size, err = dw.finish()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errPlanMiss) {
			return 0, st, err
		}
		s.metrics.errors.WithLabelValues(kindEncode).Inc()
		return 0, st, fmt.Errorf("file sink %s: %w", s.name, err)
	}
	ustart := time.Now()
	defer func() { s.metrics.upload.Observe(since(ustart)) }()
	err = f.Sync()
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		committed = true
		err = syncDir(dir)
	}
	if err != nil {
		s.metrics.errors.WithLabelValues(kindIO).Inc()
		return 0, st, fmt.Errorf("file sink %s: %w", s.name, err)
	}
	return size, st, nil
}

// Close implements Sink.
func (s *FileSink) Close() error { return nil }
