package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "schema.json")
	for _, data := range []string{"first\n", "second\n"} {
		if err := WriteFileAtomic(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	// Nothing but the file itself is left in its folder.
	if names, _ := filepath.Glob(filepath.Join(dir, "a", "b", "*")); len(names) != 1 {
		t.Errorf("folder holds %v", names)
	}
	if hidden, _ := filepath.Glob(filepath.Join(dir, "a", "b", ".*")); len(hidden) != 0 {
		t.Errorf("temporary files left: %v", hidden)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncDir of a missing folder succeeded")
	}
}
