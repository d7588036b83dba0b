package fsutil_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/marutalog/maruta/internal/crashfs"
	"github.com/marutalog/maruta/internal/fsutil"
)

// writeDurable writes a file in dir the way maruta does: write, fsync the
// file, fsync the folder.
func writeDurable(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := fsutil.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	return p
}

func cut(t *testing.T, fsys *crashfs.FS) {
	t.Helper()
	if _, err := fsys.PowerCut(nil, crashfs.CutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestMkdirAllSurvivesPowerLoss: a file made durable in its folder is lost
// with the folder when the chain was made by os.MkdirAll, and kept when it
// was made by MkdirAll.
func TestMkdirAllSurvivesPowerLoss(t *testing.T) {
	fsys, mnt := crashfs.MountForTest(t)

	plain := filepath.Join(mnt, "plain", "a", "b")
	if err := os.MkdirAll(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	lost := writeDurable(t, plain, "f")

	synced := filepath.Join(mnt, "synced", "a", "b")
	if err := fsutil.MkdirAll(synced); err != nil {
		t.Fatal(err)
	}
	kept := writeDurable(t, synced, "f")

	cut(t, fsys)
	if _, err := os.Stat(lost); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file under os.MkdirAll's folders survived (%v): the test file system does not lose folder entries", err)
	}
	if got, err := os.ReadFile(kept); err != nil || string(got) != "data" {
		t.Errorf("the file under MkdirAll's folders: %q, %v; want it kept", got, err)
	}
}

// TestMkdirAllSyncsExistingChain: folders a crashed run made (never
// synced) are synced by the next run's MkdirAll, though they exist.
func TestMkdirAllSyncsExistingChain(t *testing.T) {
	fsys, mnt := crashfs.MountForTest(t)
	dir := filepath.Join(mnt, "x", "y")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsutil.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	p := writeDurable(t, dir, "f")
	cut(t, fsys)
	if _, err := os.Stat(p); err != nil {
		t.Errorf("file in an existing, unsynced chain lost after MkdirAll: %v", err)
	}
	// The second call for the same folder costs no fsync.
	before := fsys.Stats().DirFsyncs
	if err := fsutil.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	if n := fsys.Stats().DirFsyncs - before; n != 0 {
		t.Errorf("MkdirAll of a known folder fsynced %d folders", n)
	}
}
