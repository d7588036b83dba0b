package crashfs

import (
	"context"
	"maps"
	"slices"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is the go-fuse face of an inode of the model. go-fuse keeps one per
// inode number it has handed to the kernel; the state is in m.
type node struct {
	fs.Inode
	fsys *FS
	m    *mnode
}

var (
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeReader    = (*node)(nil)
	_ fs.NodeWriter    = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeFlusher   = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
	_ fs.NodeAllocater = (*node)(nil)
)

func modeOf(m *mnode) uint32 {
	if m.dir {
		return syscall.S_IFDIR
	}
	return syscall.S_IFREG
}

// fill sets attributes from m. The caller holds fsys.mu.
func (n *node) fill(m *mnode, a *fuse.Attr) {
	a.Ino = m.ino
	a.Mode = modeOf(m) | m.perm
	a.Nlink = 1
	if m.dir {
		a.Nlink = 2
		a.Size = 4096
	} else {
		a.Size = uint64(m.size)
	}
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = pageSize
	a.SetTimes(&m.mtime, &m.mtime, &m.mtime)
	a.Uid, a.Gid = n.fsys.uid, n.fsys.gid
}

// child returns the go-fuse inode for m (reusing the one go-fuse knows).
func (n *node) child(ctx context.Context, m *mnode, out *fuse.EntryOut) *fs.Inode {
	n.fill(m, &out.Attr)
	return n.NewInode(ctx, &node{fsys: n.fsys, m: m}, fs.StableAttr{Mode: modeOf(m), Ino: m.ino})
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	defer n.fsys.mu.Unlock()
	n.fill(n.m, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	defer n.fsys.mu.Unlock()
	if sz, ok := in.GetSize(); ok {
		if n.m.dir {
			return syscall.EISDIR
		}
		n.m.truncate(int64(sz))
	}
	if mode, ok := in.GetMode(); ok {
		n.m.perm = mode & 0o7777
	}
	if mt, ok := in.GetMTime(); ok {
		n.m.mtime = mt
	}
	n.fill(n.m, &out.Attr)
	return 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return nil, e
	}
	defer n.fsys.mu.Unlock()
	c := n.m.live[name]
	if c == nil {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, c, out), 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return nil, e
	}
	defer n.fsys.mu.Unlock()
	names := slices.Sorted(maps.Keys(n.m.live))
	list := make([]fuse.DirEntry, 0, len(names))
	for _, name := range names {
		c := n.m.live[name]
		list = append(list, fuse.DirEntry{Name: name, Ino: c.ino, Mode: modeOf(c)})
	}
	return fs.NewListDirStream(list), 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return nil, e
	}
	defer n.fsys.mu.Unlock()
	if n.m.live[name] != nil {
		return nil, syscall.EEXIST
	}
	c := n.fsys.newNode(true, mode)
	n.m.live[name] = c
	n.m.mtime = time.Now()
	return n.child(ctx, c, out), 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return nil, nil, 0, e
	}
	defer n.fsys.mu.Unlock()
	c := n.m.live[name]
	switch {
	case c != nil && flags&syscall.O_EXCL != 0:
		return nil, nil, 0, syscall.EEXIST
	case c != nil && c.dir:
		return nil, nil, 0, syscall.EISDIR
	case c != nil:
		if flags&syscall.O_TRUNC != 0 {
			c.truncate(0)
		}
	default:
		c = n.fsys.newNode(false, mode)
		if err := n.fsys.openBacking(c); err != nil {
			delete(n.fsys.nodes, c.ino)
			return nil, nil, 0, fs.ToErrno(err)
		}
		n.m.live[name] = c
		n.m.mtime = time.Now()
	}
	return n.child(ctx, c, out), nil, 0, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno { return n.remove(name, false) }

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno { return n.remove(name, true) }

// remove deletes the live entry name: an empty folder when dir, else a
// file.
func (n *node) remove(name string, dir bool) syscall.Errno {
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	defer n.fsys.mu.Unlock()
	c := n.m.live[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case c.dir && !dir:
		return syscall.EISDIR
	case !c.dir && dir:
		return syscall.ENOTDIR
	case dir && len(c.live) > 0:
		return syscall.ENOTEMPTY
	}
	delete(n.m.live, name)
	n.m.mtime = time.Now()
	return 0
}

// renameNoReplace is RENAME_NOREPLACE of renameat2(2).
const renameNoReplace = 1

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	defer n.fsys.mu.Unlock()
	if flags&^renameNoReplace != 0 {
		return syscall.ENOTSUP // RENAME_EXCHANGE, RENAME_WHITEOUT
	}
	to := newParent.(*node).m
	c := n.m.live[name]
	if c == nil {
		return syscall.ENOENT
	}
	if old := to.live[newName]; old != nil {
		switch {
		case old == c:
			return 0
		case flags&renameNoReplace != 0:
			return syscall.EEXIST
		case old.dir && !c.dir:
			return syscall.EISDIR
		case !old.dir && c.dir:
			return syscall.ENOTDIR
		case old.dir && len(old.live) > 0:
			return syscall.ENOTEMPTY
		}
	}
	if c.dir {
		// A folder cannot move into itself.
		for d := to; d != nil; d = n.fsys.parentOf(d) {
			if d == c {
				return syscall.EINVAL
			}
		}
	}
	delete(n.m.live, name)
	to.live[newName] = c
	now := time.Now()
	n.m.mtime, to.mtime = now, now
	if to != n.m {
		n.fsys.renames = append(n.fsys.renames, &pendingRename{node: c, from: n.m, to: to, fromName: name, toName: newName})
	}
	return 0
}

// parentOf returns the folder whose live entries hold d (nil for the root
// or a removed folder). The caller holds f.mu.
func (f *FS) parentOf(d *mnode) *mnode {
	for _, p := range f.nodes {
		if p.dir {
			for _, c := range p.live {
				if c == d {
					return p
				}
			}
		}
	}
	return nil
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return nil, 0, e
	}
	defer n.fsys.mu.Unlock()
	if flags&syscall.O_TRUNC != 0 && !n.m.dir {
		n.m.truncate(0)
	}
	return nil, 0, 0
}

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return nil, e
	}
	defer n.fsys.mu.Unlock()
	k, err := n.m.readAt(dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if e := n.fsys.lock(); e != 0 {
		return 0, e
	}
	defer n.fsys.mu.Unlock()
	if err := n.m.writeAt(data, off); err != nil {
		return 0, fs.ToErrno(err)
	}
	if n.m.dirtySince.IsZero() || n.m.dirtyCut != n.fsys.stats.Cuts {
		n.m.dirtySince, n.m.dirtyCut = time.Now(), n.fsys.stats.Cuts
	}
	return uint32(len(data)), 0
}

// Fsync serves fsync and fdatasync of files and fsync of folders.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	start := time.Now()
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	defer n.fsys.mu.Unlock()
	defer n.fsys.observeSync(start)
	if n.m.dir {
		n.fsys.stats.DirFsyncs++
		n.fsys.syncDir(n.m)
		return 0
	}
	n.fsys.stats.Fsyncs++
	err := n.m.sync()
	if err == nil && !n.m.dirtySince.IsZero() {
		if n.m.dirtyCut == n.fsys.stats.Cuts {
			n.fsys.stats.MaxUnsynced = max(n.fsys.stats.MaxUnsynced, time.Since(n.m.dirtySince))
		}
		n.m.dirtySince = time.Time{}
	}
	return fs.ToErrno(err)
}

func (n *node) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	n.fsys.mu.Unlock()
	return 0
}

func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if e := n.fsys.lock(); e != 0 {
		return e
	}
	defer n.fsys.mu.Unlock()
	out.Bsize = pageSize
	out.Frsize = pageSize
	out.Blocks = 1 << 26 // 256 GiB
	out.Bfree = 1 << 25
	out.Bavail = 1 << 25
	out.Files = 1 << 20
	out.Ffree = 1 << 19
	out.NameLen = 255
	return 0
}
