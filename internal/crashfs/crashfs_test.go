package crashfs

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// fsyncPath fsyncs a file or folder.
func fsyncPath(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}

// writeSynced writes a file and fsyncs it (not its folder).
func writeSynced(t *testing.T, p string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, p string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func cut(t *testing.T, f *FS, opts CutOptions) CutReport {
	t.Helper()
	rep, err := f.PowerCut(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func wantContent(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("after the cut: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s after the cut: %d bytes %q, want %d bytes %q", filepath.Base(p), len(got), trim(got), len(want), trim(want))
	}
}

func wantGone(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s survived the cut (err %v), want it gone", p, err)
	}
}

func trim(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func TestFileDataNeedsFsync(t *testing.T) {
	f, mnt := MountForTest(t)
	p := filepath.Join(mnt, "a")
	writeSynced(t, p, []byte("one"))
	fsyncPath(t, mnt)
	appendFile(t, p, []byte("two"))
	if got, _ := os.ReadFile(p); string(got) != "onetwo" {
		t.Fatalf("live content %q", got)
	}
	rep := cut(t, f, CutOptions{})
	wantContent(t, p, []byte("one"))
	if rep.FilesRolledBack != 1 || rep.BytesDiscarded == 0 {
		t.Errorf("report %+v: want one file rolled back", rep)
	}
}

func TestNewEntryNeedsFolderFsync(t *testing.T) {
	f, mnt := MountForTest(t)
	lost, kept := filepath.Join(mnt, "lost"), filepath.Join(mnt, "kept")
	writeSynced(t, lost, []byte("data"))
	writeSynced(t, kept, []byte("data"))
	fsyncPath(t, mnt) // both entries durable
	writeSynced(t, filepath.Join(mnt, "late"), []byte("x"))
	rep := cut(t, f, CutOptions{})
	wantContent(t, lost, []byte("data"))
	wantContent(t, kept, []byte("data"))
	wantGone(t, filepath.Join(mnt, "late"))
	if len(rep.LostEntries) != 1 || rep.LostEntries[0] != "late" {
		t.Errorf("lost entries %q, want [late]", rep.LostEntries)
	}
}

// TestFolderChain: a file in new folders survives only if every folder up
// the chain was fsynced after its child was made.
func TestFolderChain(t *testing.T) {
	f, mnt := MountForTest(t)
	dir := filepath.Join(mnt, "x", "y")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "f")
	writeSynced(t, p, []byte("data"))
	fsyncPath(t, dir)                     // f's entry in y
	fsyncPath(t, filepath.Join(mnt, "x")) // y's entry in x; x's in the root is not durable
	cut(t, f, CutOptions{})
	wantGone(t, filepath.Join(mnt, "x"))

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSynced(t, p, []byte("data"))
	for _, d := range []string{dir, filepath.Join(mnt, "x"), mnt} {
		fsyncPath(t, d)
	}
	cut(t, f, CutOptions{})
	wantContent(t, p, []byte("data"))
}

func TestRenameNeedsFolderFsync(t *testing.T) {
	f, mnt := MountForTest(t)
	tmp, final := filepath.Join(mnt, ".f.tmp"), filepath.Join(mnt, "f")
	writeSynced(t, tmp, []byte("v1"))
	fsyncPath(t, mnt)
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	cut(t, f, CutOptions{})
	wantGone(t, final)
	wantContent(t, tmp, []byte("v1"))

	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	fsyncPath(t, mnt)
	cut(t, f, CutOptions{})
	wantGone(t, tmp)
	wantContent(t, final, []byte("v1"))

	// A rename over a durable file whose data was never synced: the new
	// name holds an empty file (what ext4 without auto_da_alloc may show).
	writeSynced(t, tmp, nil)
	fsyncPath(t, mnt)
	appendFile(t, tmp, []byte("v2"))
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	fsyncPath(t, mnt)
	cut(t, f, CutOptions{})
	wantContent(t, final, nil)
}

// TestRenameAcrossFoldersIsAtomic: fsync of either folder makes the whole
// move durable, never a file in both or in neither.
func TestRenameAcrossFoldersIsAtomic(t *testing.T) {
	for _, syncSide := range []string{"a", "b"} {
		t.Run("fsync "+syncSide, func(t *testing.T) {
			f, mnt := MountForTest(t)
			for _, d := range []string{"a", "b"} {
				if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			fsyncPath(t, mnt)
			src, dst := filepath.Join(mnt, "a", "f"), filepath.Join(mnt, "b", "g")
			writeSynced(t, src, []byte("data"))
			fsyncPath(t, filepath.Join(mnt, "a"))
			if err := os.Rename(src, dst); err != nil {
				t.Fatal(err)
			}
			fsyncPath(t, filepath.Join(mnt, syncSide))
			cut(t, f, CutOptions{})
			wantGone(t, src)
			wantContent(t, dst, []byte("data"))
		})
	}
}

func TestUnlinkNeedsFolderFsync(t *testing.T) {
	f, mnt := MountForTest(t)
	p := filepath.Join(mnt, "f")
	writeSynced(t, p, []byte("data"))
	fsyncPath(t, mnt)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	rep := cut(t, f, CutOptions{})
	wantContent(t, p, []byte("data"))
	if len(rep.Revived) != 1 {
		t.Errorf("revived %q, want [f]", rep.Revived)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	fsyncPath(t, mnt)
	cut(t, f, CutOptions{})
	wantGone(t, p)
}

// TestTornCut keeps a prefix of the unsynced bytes, cut at a byte offset.
func TestTornCut(t *testing.T) {
	f, mnt := MountForTest(t)
	p := filepath.Join(mnt, "f")
	base := bytes.Repeat([]byte("d"), 1000)
	writeSynced(t, p, base)
	fsyncPath(t, mnt)
	more := make([]byte, 20000)
	for i := range more {
		more[i] = byte('a' + i%26)
	}
	appendFile(t, p, more)
	live := append(append([]byte{}, base...), more...)
	r := rand.New(rand.NewPCG(1, 2))
	sizes := map[int]bool{}
	for range 5 {
		rep := cut(t, f, CutOptions{Torn: r})
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < len(base) || len(got) > len(live) || !bytes.Equal(got, live[:len(got)]) {
			t.Fatalf("torn file of %d bytes is not a prefix of the live content (%d bytes)", len(got), len(live))
		}
		sizes[len(got)] = true
		t.Logf("torn cut kept %d of %d bytes (report %+v)", len(got), len(live), rep)
		// The kept prefix is durable now; write the rest again.
		if err := os.WriteFile(p, live, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(sizes) < 2 {
		t.Errorf("five torn cuts kept the same size every time: %v", sizes)
	}
}

func TestFrozenRefusesEverything(t *testing.T) {
	f, mnt := MountForTest(t)
	p := filepath.Join(mnt, "f")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f.Freeze()
	if _, err := fh.Write([]byte("x")); !errors.Is(err, syscall.EIO) {
		t.Errorf("write after freeze: %v, want EIO", err)
	}
	if err := fh.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync after freeze: %v, want EIO", err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); !errors.Is(err, syscall.EIO) {
		t.Errorf("mkdir after freeze: %v, want EIO", err)
	}
}

// TestRandomFileOps compares one file's live content with a reference
// through random writes, truncations and syncs, and its content after each
// cut with the reference at the last sync.
func TestRandomFileOps(t *testing.T) {
	f, mnt := MountForTest(t)
	p := filepath.Join(mnt, "f")
	writeSynced(t, p, nil)
	fsyncPath(t, mnt)
	r := rand.New(rand.NewPCG(3, 4))
	var live, durable []byte
	for round := range 20 {
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 30 {
			switch op := r.IntN(10); {
			case op < 6:
				off := r.IntN(len(live) + 9000)
				data := make([]byte, 1+r.IntN(9000))
				for i := range data {
					data[i] = byte(1 + r.IntN(255))
				}
				if _, err := fh.WriteAt(data, int64(off)); err != nil {
					t.Fatal(err)
				}
				if end := off + len(data); end > len(live) {
					live = append(live, make([]byte, end-len(live))...)
				}
				copy(live[off:], data)
			case op < 8:
				n := r.IntN(len(live) + 5000)
				if err := fh.Truncate(int64(n)); err != nil {
					t.Fatal(err)
				}
				if n < len(live) {
					live = live[:n]
				} else {
					live = append(live, make([]byte, n-len(live))...)
				}
			default:
				if err := fh.Sync(); err != nil {
					t.Fatal(err)
				}
				durable = append(durable[:0], live...)
			}
		}
		fh.Close()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, live) {
			t.Fatalf("round %d: live content differs from the reference (%d vs %d bytes)", round, len(got), len(live))
		}
		cut(t, f, CutOptions{})
		wantContent(t, p, durable)
		live = append(live[:0], durable...)
	}
}
