package crashfs

import (
	"os"
	"path/filepath"
	"testing"
)

// MountForTest makes a file system in a temporary folder, mounts it and
// returns it with its mount point; it is unmounted when the test ends
// (cleanups registered later, such as killing the program that uses it,
// run first). When FUSE cannot mount here the test is skipped, or fails if
// MARUTA_REQUIRE_TOOLS=1.
func MountForTest(t testing.TB) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := New(backing)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Mount(mnt); err != nil {
		msg := "cannot mount a FUSE file system here (needs /dev/fuse and root, or fusermount3): " + err.Error()
		if os.Getenv("MARUTA_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("crashfs: %v", err)
		}
	})
	return f, mnt
}

// PowerCut cuts the power: Freeze, kill (the test's program, with SIGKILL;
// nil if there is none), Unmount, Cut, and Mount again on the same folder.
func (f *FS) PowerCut(kill func(), opts CutOptions) (CutReport, error) {
	f.mu.Lock()
	mnt := f.mnt
	f.mu.Unlock()
	f.Freeze()
	if kill != nil {
		kill()
	}
	if err := f.Unmount(); err != nil {
		return CutReport{}, err
	}
	rep, err := f.Cut(opts)
	if err != nil {
		return rep, err
	}
	return rep, f.Mount(mnt)
}
