package crashfs

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a crash-simulating file system. Its state survives unmounting: a
// test mounts it, cuts the power, unmounts, and mounts it again.
type FS struct {
	backing  string
	uid, gid uint32

	mu      sync.Mutex
	nodes   map[uint64]*mnode
	root    *mnode
	nextIno uint64
	frozen  bool
	renames []*pendingRename
	stats   Stats

	server *fuse.Server
	mnt    string
}

// Stats counts what the file system did since New.
type Stats struct {
	Fsyncs    int64 // fsync/fdatasync of files
	DirFsyncs int64 // fsync of directories
	// MaxSync is the longest a sync request (file or directory) took to
	// serve.
	MaxSync time.Duration
	// MaxUnsynced is the longest a file's write waited for the fsync of
	// that file that made it durable (writes a cut discarded not counted):
	// the loss window a workload actually had, scheduling delays included.
	MaxUnsynced time.Duration
	Cuts        int
}

// pendingRename is a rename between two folders that is not durable yet.
type pendingRename struct {
	node             *mnode
	from, to         *mnode
	fromName, toName string
}

// New makes an empty file system whose durable content lives in backing (a
// folder that must exist and be empty).
func New(backing string) (*FS, error) {
	ents, err := os.ReadDir(backing)
	if err != nil {
		return nil, fmt.Errorf("crashfs: %w", err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("crashfs: backing folder %s is not empty", backing)
	}
	f := &FS{backing: backing, nodes: map[uint64]*mnode{}, nextIno: 1, uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	f.root = f.newNode(true, 0o755)
	return f, nil
}

// Mount serves the file system on mnt (an empty folder) until Unmount.
func (f *FS) Mount(mnt string) error {
	f.mu.Lock()
	if f.server != nil {
		f.mu.Unlock()
		return errors.New("crashfs: already mounted")
	}
	f.frozen = false
	f.mu.Unlock()
	timeout := time.Second
	opts := &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		UID:          uint32(os.Getuid()),
		GID:          uint32(os.Getgid()),
		MountOptions: fuse.MountOptions{
			FsName:      "crashfs",
			Name:        "crashfs",
			DirectMount: true, // as root: mount(2) without fusermount
			MaxWrite:    1 << 20,
		},
		RootStableAttr: &fs.StableAttr{Mode: syscall.S_IFDIR, Ino: f.root.ino},
	}
	srv, err := fs.Mount(mnt, &node{fsys: f, m: f.root}, opts)
	if err != nil {
		return fmt.Errorf("crashfs: mount %s: %w", mnt, err)
	}
	f.mu.Lock()
	f.server, f.mnt = srv, mnt
	f.mu.Unlock()
	return nil
}

// Unmount stops serving. The files of the mount must be closed (the program
// killed); if the kernel still reports the mount busy it is detached.
func (f *FS) Unmount() error {
	f.mu.Lock()
	srv, mnt := f.server, f.mnt
	f.server, f.mnt = nil, ""
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Unmount(); err != nil {
		if derr := syscall.Unmount(mnt, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("crashfs: unmount %s: %w (detach: %v)", mnt, err, derr)
		}
		srv.Wait()
	}
	return nil
}

// Freeze is the moment the power goes: from now on every request fails
// with EIO, so nothing more becomes durable. Kill the program, Unmount,
// then Cut.
func (f *FS) Freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

// CutOptions choose what a power cut keeps.
type CutOptions struct {
	// Torn, when not nil, keeps the unsynced writes of each file below a
	// random offset between the start of its first unsynced page and its
	// live size, instead of discarding them all.
	Torn *rand.Rand
}

// CutReport says what a cut discarded, for the test's log.
type CutReport struct {
	// LostEntries are live paths that did not survive, or survived naming
	// another file ("path (was renamed)"); Revived are paths that came back
	// although they were removed or renamed away.
	LostEntries []string
	Revived     []string
	// FilesRolledBack counts files that had unsynced changes;
	// BytesDiscarded the unsynced bytes not kept; TornFiles the files a
	// torn cut kept part of.
	FilesRolledBack int
	BytesDiscarded  int64
	TornFiles       int
}

// Cut rolls the file system back to its durable state (see the package
// doc). It must be unmounted (and is frozen until the next Mount).
func (f *FS) Cut(opts CutOptions) (CutReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.server != nil {
		return CutReport{}, errors.New("crashfs: cut while mounted: unmount first")
	}
	f.frozen = true
	f.stats.Cuts++
	var rep CutReport
	live, durable := map[string]*mnode{}, map[string]*mnode{}
	walk(f.root, "", func(d *mnode) map[string]*mnode { return d.live }, live)
	walk(f.root, "", func(d *mnode) map[string]*mnode { return d.durable }, durable)
	for p, n := range live {
		if d, ok := durable[p]; !ok {
			rep.LostEntries = append(rep.LostEntries, p)
		} else if d != n {
			rep.LostEntries = append(rep.LostEntries, p+" (now names another file)")
		}
	}
	for p := range durable {
		if _, ok := live[p]; !ok {
			rep.Revived = append(rep.Revived, p)
		}
	}
	sort.Strings(rep.LostEntries)
	sort.Strings(rep.Revived)

	// Inodes without a durable name are gone.
	keep := map[uint64]bool{}
	for _, n := range durable {
		keep[n.ino] = true
	}
	keep[f.root.ino] = true
	for ino, n := range f.nodes {
		if !keep[ino] {
			n.drop()
			delete(f.nodes, ino)
		}
	}
	f.renames = nil
	var errs []error
	for _, n := range f.nodes {
		if n.dir {
			n.live = maps.Clone(n.durable)
			continue
		}
		if !n.changed() {
			continue
		}
		rep.FilesRolledBack++
		var discarded int64
		var torn bool
		var err error
		if opts.Torn != nil {
			discarded, torn, err = n.tear(opts.Torn)
		} else {
			discarded = n.discard()
		}
		rep.BytesDiscarded += discarded
		if torn {
			rep.TornFiles++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// Stats returns counters since New.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Close unmounts (if mounted) and closes the backing files. The backing
// folder is left for the caller (a test's temporary folder).
func (f *FS) Close() error {
	err := f.Unmount()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.f != nil {
			n.f.Close()
			n.f = nil
		}
	}
	return err
}

// walk records every path under d (relative, slash-separated) in out,
// following the entries that entries(d) gives.
func walk(d *mnode, prefix string, entries func(*mnode) map[string]*mnode, out map[string]*mnode) {
	names := slices.Sorted(maps.Keys(entries(d)))
	for _, name := range names {
		c := entries(d)[name]
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		if _, seen := out[p]; seen {
			continue
		}
		out[p] = c
		if c.dir {
			walk(c, p, entries, out)
		}
	}
}

// newNode makes an inode; a file gets its backing file. The caller holds
// f.mu (or owns f).
func (f *FS) newNode(dir bool, perm uint32) *mnode {
	n := &mnode{ino: f.nextIno, dir: dir, perm: perm & 0o7777, mtime: time.Now()}
	f.nextIno++
	if dir {
		n.live, n.durable = map[string]*mnode{}, map[string]*mnode{}
	} else {
		n.pages = map[int64]*page{}
	}
	f.nodes[n.ino] = n
	return n
}

// openBacking opens (creating) the backing file of a file inode.
func (f *FS) openBacking(n *mnode) error {
	if n.f != nil {
		return nil
	}
	bf, err := os.OpenFile(filepath.Join(f.backing, strconv.FormatUint(n.ino, 10)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	n.f = bf
	return nil
}

// syncDir makes d's entries durable, and with them the pending renames
// into or out of d (see the package doc).
func (f *FS) syncDir(d *mnode) {
	d.durable = maps.Clone(d.live)
	var commit []*pendingRename
	for _, r := range f.renames {
		if r.from == d || r.to == d {
			commit = append(commit, r)
		}
	}
	for len(commit) > 0 {
		r := commit[0]
		commit = commit[1:]
		i := slices.Index(f.renames, r)
		if i < 0 {
			continue // committed already
		}
		// Earlier renames of the same file commit first, as in a journal.
		for _, e := range f.renames[:i] {
			if e.node == r.node {
				commit = append([]*pendingRename{e, r}, commit...)
				r = nil
				break
			}
		}
		if r == nil {
			continue
		}
		f.renames = slices.Delete(f.renames, i, i+1)
		if r.from.durable[r.fromName] == r.node {
			delete(r.from.durable, r.fromName)
		}
		r.to.durable[r.toName] = r.node
	}
}

// lock takes f.mu for a request, or returns EIO (without the lock) when
// the power is off.
func (f *FS) lock() syscall.Errno {
	f.mu.Lock()
	if f.frozen {
		f.mu.Unlock()
		return syscall.EIO
	}
	return 0
}

// observeSync records how long a sync request took. The caller holds f.mu.
func (f *FS) observeSync(start time.Time) {
	if d := time.Since(start); d > f.stats.MaxSync {
		f.stats.MaxSync = d
	}
}
