package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/buffer"
	"github.com/marutalog/maruta/internal/crashfs"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
)

// TestPowerLoss runs maruta on crashfs (a file system that loses what a
// power cut loses: unsynced data and folder entries no folder fsync made
// durable) and cuts the power again and again under acked load: acked
// Forward senders with chunk ids record what was acked and when, and send
// what was not acked again (same chunk id) after the restart; the power
// goes (every file system request fails from then on), maruta is killed
// with SIGKILL, the file system is rolled back to its durable state, and
// the state on disk is checked before maruta restarts on it:
//
//   - every acked event is in the lake or in a chunk of the buffer (up to
//     its first bad frame); with fsync: interval an acked event may be
//     missing only if it was acknowledged within the loss window
//     FORMAT.md states (the last fsync_interval plus one fsync) before the
//     cut, or within the longest wait of a write for its fsync that
//     crashfs saw (a loaded machine runs the interval's timer late);
//   - no lake file is torn (every file is whole JSON lines).
//
// After a restart no temporary file is left in the lake, and at the end a
// clean stop delivers everything: every acked event not lost inside the
// window is in the lake, and none twice (the dedup marks survive the cuts
// with the events). The torn variant keeps part of the unsynced bytes
// (a write torn in the middle of a frame), which recovery must cut.
//
// MARUTA_POWERLOSS_CYCLES sets the cycles per variant (default 6, about
// 15 s in all).
func TestPowerLoss(t *testing.T) {
	cycles := 6
	if v := os.Getenv("MARUTA_POWERLOSS_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MARUTA_POWERLOSS_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	if testing.Short() {
		cycles = 2
	}
	for _, v := range []struct {
		name  string
		fsync string
		torn  bool
	}{
		{"always", "always", false},
		{"interval", "interval", false},
		{"interval_torn", "interval", true},
	} {
		t.Run(v.name, func(t *testing.T) {
			runPowerLoss(t, v.fsync, v.torn, cycles)
		})
	}
}

// fsyncInterval is the buffers' fsync_interval in the interval variants.
const fsyncInterval = 300 * time.Millisecond

func runPowerLoss(t *testing.T, fsyncMode string, torn bool, cycles int) {
	fsys, mnt := crashfs.MountForTest(t)
	dir := t.TempDir()
	addr := freeTCPPort(t)
	cfg := writeFile(t, dir, "power.yaml", fmt.Sprintf(`
node: power
data_dir: %[1]s/data
http: {listen: off}
shutdown_timeout: 60s
sources:
  - type: forward
    listen: %[2]s
outputs:
  - type: file
    name: out
    format: jsonl
    path: %[1]s/lake/${tag}/dt=%%Y-%%m-%%d/
    buffer:
      flush_interval: 200ms
      chunk_limit_size: 64KiB
      fsync: %[3]s
      fsync_interval: %[4]s
`, mnt, addr, fsyncMode, fsyncInterval))
	lake := filepath.Join(mnt, "lake")
	bufDir := filepath.Join(mnt, "data", "buffer", "out")

	acks := &powerAcks{at: map[string]time.Time{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := range 4 {
		wg.Go(func() { powerSender(addr, i, stop, acks) })
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var cut crashfs.CutOptions
	if torn {
		cut.Torn = r
	}
	lakeCache := map[string][]string{}
	lost := map[string]bool{} // acked, lost inside the window
	type row struct {
		acked, missing, lostInWindow int
		maxAge                       time.Duration
		lostEntries                  int
	}
	var rows []row
	tornCuts, tempsLeft := 0, 0
	p := startMaruta(t, dir, nil, "-c", cfg)
	for c := range cycles {
		before := acks.count()
		// Load: at least a few hundred new acks, then a random moment.
		testutil.WaitUntil(t, 30*time.Second, "acks", func() bool { return acks.count() >= before+200 })
		time.Sleep(time.Duration(r.IntN(800)) * time.Millisecond)
		cutAt := time.Now()
		rep, err := fsys.PowerCut(p.kill, cut)
		if err != nil {
			t.Fatalf("power cut %d: %v", c+1, err)
		}
		acked := acks.snapshot()
		t.Logf("cut %d: %d entries lost, %d revived, %d files rolled back (%d bytes), %d torn",
			c+1, len(rep.LostEntries), len(rep.Revived), rep.FilesRolledBack, rep.BytesDiscarded, rep.TornFiles)
		if len(rep.LostEntries) > 0 {
			t.Logf("cut %d: lost entries (first 10): %q", c+1, rep.LostEntries[:min(10, len(rep.LostEntries))])
		}

		// The state a restart finds.
		have, tornFiles := powerState(t, lake, bufDir, lakeCache)
		if len(tornFiles) > 0 {
			t.Errorf("cut %d: torn lake files: %q", c+1, tornFiles)
		}
		rw := row{acked: len(acked) - before, lostEntries: len(rep.LostEntries)}
		// The window FORMAT.md states, or the one the run had: a loaded
		// machine runs the interval's timer late, and a write waits for
		// the sync that covers it longer than interval + one fsync.
		// crashfs measures that wait; it must stay near the interval.
		st := fsys.Stats()
		window := max(fsyncInterval+st.MaxSync, st.MaxUnsynced)
		if fsyncMode == "interval" && st.MaxUnsynced > fsyncInterval+st.MaxSync+2*time.Second {
			t.Errorf("cut %d: a write waited %s for its fsync (fsync_interval %s)", c+1, st.MaxUnsynced, fsyncInterval)
		}
		for id, at := range acked {
			if have[id] || lost[id] {
				continue
			}
			age := cutAt.Sub(at)
			if fsyncMode == "interval" && age <= window {
				lost[id] = true
				rw.lostInWindow++
				rw.maxAge = max(rw.maxAge, age)
				continue
			}
			lost[id] = true // counted once
			rw.missing++
			if rw.missing <= 5 {
				t.Errorf("cut %d: event %s acked %s before the cut is neither in the lake nor in the buffer", c+1, id, age.Round(time.Millisecond))
			}
		}
		rows = append(rows, rw)

		litter := lakeTemps(t, lake)
		tempsLeft += len(litter)
		p = startMaruta(t, dir, nil, "-c", cfg)
		if torn && strings.Contains(p.logs.String(), "cut a torn or corrupt tail") {
			tornCuts++
		}
		for _, f := range litter {
			if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cut %d: temporary file %s left by the killed run is still there after the restart (%v)", c+1, f, err)
			}
		}
	}
	// A last stretch of load, then a clean stop that delivers everything.
	before := acks.count()
	testutil.WaitUntil(t, 30*time.Second, "acks", func() bool { return acks.count() >= before+200 })
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	p.stop(90 * time.Second)
	acked := acks.snapshot()
	delivered := map[string]bool{}
	var torns []string
	dups := 0
	for id, n := range readLakeIDsChecked(t, lake, lakeCache, &torns) {
		delivered[id] = true
		dups += n - 1
	}
	if len(torns) > 0 {
		t.Errorf("torn lake files at the end: %q", torns)
	}
	missing := 0
	for id := range acked {
		if !delivered[id] && !lost[id] {
			missing++
			if missing <= 5 {
				t.Errorf("acked event %s was not delivered", id)
			}
		}
	}
	left, _ := filepath.Glob(filepath.Join(bufDir, "*.chunk"))
	if len(left) > 0 {
		t.Errorf("chunks left in the buffer after a clean stop: %q", left)
	}
	for _, sub := range []string{"quarantine", "../../deadletter/out"} {
		if ents, _ := os.ReadDir(filepath.Join(bufDir, sub)); len(ents) > 0 {
			t.Errorf("%s is not empty: %d files", sub, len(ents))
		}
	}

	// The cycle table for the report.
	var tb strings.Builder
	fmt.Fprintf(&tb, "fsync %s%s, %d cycles:\n  cycle  acked  missing  lost_in_window  oldest_lost_age  lost_entries\n", fsyncMode, map[bool]string{true: " (torn)"}[torn], cycles)
	total := row{}
	for i, rw := range rows {
		fmt.Fprintf(&tb, "  %5d  %5d  %7d  %14d  %15s  %12d\n", i+1, rw.acked, rw.missing, rw.lostInWindow, rw.maxAge.Round(time.Millisecond), rw.lostEntries)
		total.acked += rw.acked
		total.missing += rw.missing
		total.lostInWindow += rw.lostInWindow
	}
	fmt.Fprintf(&tb, "  total  %5d  %7d  %14d   (acked in all %d, missing at the end %d, stored twice %d; window %s; lake temporary files the cuts left, all removed at restart: %d; restarts that cut a torn frame: %d)",
		total.acked, total.missing, total.lostInWindow, len(acked), missing, dups, fsyncInterval+fsys.Stats().MaxSync, tempsLeft, tornCuts)
	t.Log(tb.String())
	if torn && tornCuts == 0 {
		t.Errorf("no restart cut a torn frame in %d torn power cuts", cycles)
	}
	if fsyncMode == "always" && total.lostInWindow != 0 {
		t.Errorf("fsync always lost %d acked events", total.lostInWindow)
	}
	// The senders resend what was not acked; the marks in the chunks and
	// the dedup record make the restarted process ack those again without
	// storing them.
	if dups > 0 {
		t.Errorf("%d events stored twice", dups)
	}
}

// powerAcks records when each event was acknowledged.
type powerAcks struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *powerAcks) add(ids []string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.at[id] = at
	}
}

func (a *powerAcks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

func (a *powerAcks) snapshot() map[string]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]time.Time, len(a.at))
	for k, v := range a.at {
		out[k] = v
	}
	return out
}

// powerSender sends PackedForward requests of 20 events with a chunk id and
// waits for each ack, reconnecting whenever maruta is gone and sending the
// unacked request again. Each connection uses a new tag for its new
// requests (so new partition folders keep appearing in the lake).
func powerSender(addr string, n int, stop <-chan struct{}, acks *powerAcks) {
	s := &ackedSender{addr: addr, name: fmt.Sprintf("s%d", n), events: 20, pad: 150, acked: acks.add, resend: true,
		tag: func(conn int) string { return fmt.Sprintf("power.s%d.g%d", n, conn) }}
	s.run(stop)
}

// powerState returns the ids of every event in the lake and in the buffer's
// chunk files (up to each file's first bad frame), and the lake files that
// are torn.
func powerState(t *testing.T, lake, bufDir string, cache map[string][]string) (map[string]bool, []string) {
	t.Helper()
	var torn []string
	have := map[string]bool{}
	for id := range readLakeIDsChecked(t, lake, cache, &torn) {
		have[id] = true
	}
	for _, sub := range []string{"", "quarantine", "../../deadletter/out"} {
		files, _ := filepath.Glob(filepath.Join(bufDir, sub, "*.chunk"))
		for _, f := range files {
			err := buffer.ReadChunkFile(f, func(_ string, _ event.Time, rec []byte) error {
				v, _, err := msgpack.MapGet(rec, "id", 4)
				if err != nil {
					return err
				}
				s, _, err := msgpack.ReadStr(v)
				if err != nil {
					return err
				}
				have[string(s)] = true
				return nil
			})
			if err != nil && sub == "" && !strings.Contains(err.Error(), "corrupt") {
				t.Logf("reading %s: %v", filepath.Base(f), err)
			}
		}
	}
	return have, torn
}

// readLakeIDsChecked counts the ids in every lake file (not the
// temporary ones) and appends the files that are not whole JSON lines to
// torn. A file read once is cached by path and size (lake files are never
// changed, only replaced).
func readLakeIDsChecked(t *testing.T, lake string, cache map[string][]string, torn *[]string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	err := filepath.WalkDir(lake, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".jsonl") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		key := p + "\x00" + strconv.FormatInt(info.Size(), 10)
		got, ok := cache[key]
		if !ok {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(data) == 0 || data[len(data)-1] != '\n' {
				*torn = append(*torn, fmt.Sprintf("%s (%d bytes, no final newline)", p, len(data)))
				return nil
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var rec struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.ID == "" {
					*torn = append(*torn, fmt.Sprintf("%s (line not JSON: %.40q)", p, sc.Text()))
					return nil
				}
				got = append(got, rec.ID)
			}
			cache[key] = got
		}
		for _, id := range got {
			ids[id]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the lake: %v", err)
	}
	return ids
}

// lakeTemps lists the file sink's temporary files under the lake (after a
// cut: those the killed run left).
func lakeTemps(t *testing.T, lake string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(lake, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
