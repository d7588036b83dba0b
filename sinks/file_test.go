package sinks

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/sinks/sinktest"
)

// TestFileSinkRemovesTempsOfEarlierRuns: temporary files a killed run left
// under the output's folder are removed at start, counted and logged; files
// of another pattern, outside the folder, or written since this process
// started (a write in progress) are kept.
func TestFileSinkRemovesTempsOfEarlierRuns(t *testing.T) {
	dir := t.TempDir()
	old := processStart.Add(-time.Hour)
	mk := func(rel string, mtime time.Time) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{
		mk("lake/tag=a/dt=2026-01-01/hour=00/.node-1-0hbc.parquet.3021986451.tmp", old),
		mk("lake/tag=b/.x.jsonl.gz.7.tmp", old),
	}
	kept := []string{
		mk("lake/tag=a/dt=2026-01-01/hour=00/.node-1-0hbd.parquet.11.tmp", time.Now().Add(time.Minute)), // being written
		mk("lake/tag=a/notes.tmp", old),                // not the sink's pattern
		mk("lake/tag=a/.node-1-0hbe.parquet.tmp", old), // no random part
		mk("lake/tag=a/node-1-0hbf.parquet", old),
		mk("elsewhere/.node-1-0hbg.parquet.5.tmp", old), // outside the output's folder
	}
	var logs bytes.Buffer
	_, out := sinktest.Output(t, dir, "  - type: file\n    name: lake\n")
	reg := prometheus.NewRegistry()
	s, err := New(Options{Output: out, Node: "node-1", DataDir: dir, Registerer: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", p, err)
		}
		if !strings.Contains(logs.String(), filepath.Base(p)) {
			t.Errorf("removal of %s not logged", filepath.Base(p))
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: removed (%v), want kept", p, err)
		}
	}
	if v := counter(t, reg, "maruta_sink_temp_files_removed_total"); v != 2 {
		t.Errorf("maruta_sink_temp_files_removed_total = %v, want 2", v)
	}
}
