package buffer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/marutalog/maruta/buffer/buffertest"
	"github.com/marutalog/maruta/internal/crashfs"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// TestFoldersSurvivePowerLoss runs a buffer on crashfs (a file system that
// loses folder entries no folder fsync made durable) in folders it creates
// itself, dead-letters a chunk and quarantines a bad file, cuts the power,
// and finds the dead letter and the quarantined file again: the buffer,
// dead-letter and quarantine folders are created with their parent chain
// made durable before anything is moved into them.
func TestFoldersSurvivePowerLoss(t *testing.T) {
	fsys, mnt := crashfs.MountForTest(t)
	dir := filepath.Join(mnt, "data", "buffer", "out")
	sink := &buffertest.RecordingSink{Fail: func(delivery.Chunk, int) error {
		return delivery.Permanent(errors.New("403 access denied"))
	}}
	h := newHarness(t, testConfig(dir), sink, nil).start()
	h.consume("app", "e", 4, time.Now())
	h.drain()
	h.stop()

	// A file recovery cannot read: written durably into the buffer folder.
	bad := "0hzzzzzzzzzzzzzz" + queuedSuffix
	f, err := os.Create(filepath.Join(dir, bad))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not a chunk")
	f.Sync()
	f.Close()
	if err := syncDir(dir); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, testConfig(dir), &buffertest.RecordingSink{}, nil)
	h2.stop()

	rep, err := fsys.PowerCut(nil, crashfs.CutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LostEntries) > 0 {
		t.Logf("lost in the cut: %q", rep.LostEntries)
	}
	dls, err := ListDeadLetters(h.dead)
	if err != nil || len(dls) != 1 {
		t.Fatalf("after the power cut: dead letters %v, %v; want the one chunk", dls, err)
	}
	if dls[0].Reason != "permanent" {
		t.Errorf("dead letter note after the power cut: reason %q, want permanent", dls[0].Reason)
	}
	n := 0
	if err := ReadChunkFile(dls[0].File, func(string, event.Time, []byte) error { n++; return nil }); err != nil || n != 4 {
		t.Errorf("dead letter reads %d events (%v), want 4", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", bad)); err != nil {
		t.Errorf("quarantined file after the power cut: %v", err)
	}
}
