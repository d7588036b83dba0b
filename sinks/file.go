package sinks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marutalog/maruta/internal/fsutil"
)

// fileStore is the object store of a file output: each chunk is one file of
// the lake layout under a local folder, staged as a temporary file
// (".<name>.<random>.tmp") in its target folder (created with its parent
// chain made durable), then fsynced, renamed to its final name and the
// folder fsynced. A chunk written again replaces its
// file atomically, so the same chunk never yields two files. It is the
// embedded default output of `maruta run`.
type fileStore struct {
	*common
}

func newFileSink(opts Options) (*objectSink, error) {
	f := opts.Output.File
	c, err := newCommon(opts, &f.Encoding, f.Path, f.ObjectKey, f.Buffer.ChunkKeys, filepath.Join(opts.DataDir, "tmp"))
	if err != nil {
		return nil, err
	}
	// Lake files are not read back: written with O_DIRECT where possible.
	return &objectSink{common: c, store: &fileStore{common: c}, kind: "file", direct: true}, nil
}

// stage implements stager: the temporary file is created in the target
// folder, so that a rename publishes it.
func (s *fileStore) stage(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := fsutil.MkdirAll(dir); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
}

// put implements objectStore: fsync, rename over any earlier file of the
// chunk, fsync of the folder.
func (s *fileStore) put(_ context.Context, o *object) error {
	f := o.file
	err := f.Sync()
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), o.key)
	}
	if err == nil {
		o.moved = true
		err = fsutil.SyncDir(filepath.Dir(o.key))
	}
	if err != nil {
		s.metrics.errors.WithLabelValues(kindIO).Inc()
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	return nil
}
