package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// A new file, a rename or a new folder is durable only once the folder
// holding its entry was fsynced after the change; a folder made by
// os.MkdirAll is reachable after a power loss only if each parent up the
// chain was fsynced after its child was made. ext4 usually commits such
// entries within seconds anyway; POSIX does not promise it, and
// internal/crashfs (the test file system) does not give it (ARCHITECTURE.md,
// "Durability contract", "On disk").

// known holds the folders (absolute, clean) whose entry in their parent
// this process has made durable. It only saves fsyncs: it is empty after a
// restart, so a folder a crashed run made but never synced is synced now.
var known sync.Map

// knownLimit bounds known (one entry per folder, e.g. per lake partition):
// past it the set starts over, which costs one fsync per folder again.
const knownLimit = 100_000

var knownCount struct {
	sync.Mutex
	n int
}

// MkdirAll creates dir and its missing parents (mode 0o755, like
// os.MkdirAll) and makes the chain durable: the parent of every folder
// from dir up to the root is fsynced, once per process, so that dir is
// reachable after a power loss. Folders above those this call created may
// be read-only or unreadable to maruta: their fsync is tried and an error
// that says so ignored (see notOurs; someone else made them).
func MkdirAll(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, ok := known.Load(abs); ok {
		return nil
	}
	// The folders that did not exist: created now, their parents must
	// sync without excuse.
	created := map[string]bool{}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created[d] = true
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	var chain []string
	for d := abs; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, ok := known.Load(d); ok {
			break
		}
		chain = append(chain, d)
	}
	for _, d := range chain {
		parent := filepath.Dir(d)
		if err := SyncDir(parent); err != nil {
			if !created[d] && notOurs(err) {
				continue
			}
			return &os.PathError{Op: "sync folder", Path: parent, Err: err}
		}
	}
	for _, d := range chain {
		remember(d)
	}
	return nil
}

// notOurs reports an fsync error of a folder maruta did not make that is
// no reason to fail: no permission, a read-only file system, or one that
// cannot fsync folders.
func notOurs(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, errors.ErrUnsupported) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EINVAL)
}

func remember(d string) {
	knownCount.Lock()
	defer knownCount.Unlock()
	if knownCount.n >= knownLimit {
		known.Clear()
		knownCount.n = 0
	}
	if _, loaded := known.LoadOrStore(d, true); !loaded {
		knownCount.n++
	}
}
