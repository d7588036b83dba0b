package sinks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/fsutil"
)

// fileStore is the object store of a file output: each chunk is one file of
// the lake layout under a local folder, staged as a temporary file
// (".<name>.<random>.tmp") in its target folder (created with its parent
// chain made durable), then fsynced, renamed to its final name and the
// folder fsynced. A chunk written again replaces its
// file atomically, so the same chunk never yields two files. It is the
// embedded default output of `maruta run`.
//
// A temporary file is garbage once its writer died (the chunk is still in
// the buffer and is written again): at start the store removes those under
// the output's root folder (removeTemps).
type fileStore struct {
	*common
}

func newFileSink(opts Options) (*objectSink, error) {
	f := opts.Output.File
	c, err := newCommon(opts, &f.Encoding, f.Path, f.ObjectKey, f.Buffer.ChunkKeys, filepath.Join(opts.DataDir, "tmp"))
	if err != nil {
		return nil, err
	}
	s := &fileStore{common: c}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	removed := register(prometheus.WrapRegistererWith(prometheus.Labels{"output": c.name}, reg),
		prometheus.NewCounter(prometheus.CounterOpts{
			Name: "maruta_sink_temp_files_removed_total",
			Help: "Temporary files of writes a crash interrupted, removed from the output's folder at start.",
		}))
	if !opts.Check {
		s.removeTemps(c.keys.Root(), processStart, removed)
	}
	// Lake files are not read back: written with O_DIRECT where possible.
	return &objectSink{common: c, store: s, kind: "file", direct: true}, nil
}

// processStart is when this process started (near enough): temporary files
// older than it were left by an earlier run.
var processStart = time.Now()

// tempName matches the names of the store's temporary files: os.CreateTemp
// with the pattern "."+name+".*.tmp" puts decimal digits for the star.
var tempName = regexp.MustCompile(`^\..+\.[0-9]+\.tmp$`)

// removeTemps deletes the temporary files an earlier run left under root
// (the output's folder): only names of the store's own pattern, only files
// last changed before this process started (so never a file a running
// write owns, even one of another output sharing the folder). Each removal
// is counted and logged. A root that is empty or "/" (a path that starts
// with a placeholder) is not searched.
func (s *fileStore) removeTemps(root string, before time.Time, removed prometheus.Counter) {
	if root == "" || root == string(filepath.Separator) || root == "." {
		s.log.Debug("output path has no fixed folder: temporary files of earlier runs are not looked for")
		return
	}
	var n, bytes int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() || !tempName.MatchString(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(p); err != nil {
			s.log.Warn("cannot remove a temporary file left by an earlier run", "file", p, "err", err)
			return nil
		}
		n++
		bytes += info.Size()
		removed.Inc()
		s.log.Info("removed a temporary file left by an earlier run", "file", p, "bytes", info.Size())
		return nil
	})
	if err != nil {
		s.log.Warn("looking for temporary files of earlier runs", "root", root, "err", err)
	}
	if n > 0 {
		s.log.Info("removed temporary files left by an earlier run", "root", root, "files", n, "bytes", bytes)
	}
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
