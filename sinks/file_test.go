package sinks

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/delivery"
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

// TestFileSinkRewriteAfterRestart: a chunk written again after a crash (the
// buffer had not deleted it) replaces its lake file atomically, with a
// file of another encoding: one file, whole, holding the chunk's events
// once, no temporary file left.
func TestFileSinkRewriteAfterRestart(t *testing.T) {
	dir := t.TempDir()
	_, out := sinktest.Output(t, dir, "  - type: file\n    name: lake\n    path: "+dir+"/lake/\n")
	open := func() delivery.Sink {
		s, err := New(Options{Output: out, Node: "node-1", DataDir: dir, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := context.Background()
	s := open()
	// A wide file plan first, so c1 is written in one pass with NULL
	// columns; after the restart it is written in two passes.
	for _, c := range []*sinktest.Chunk{dockerChunk(t, "c0", out.File.Path, 200, true), dockerChunk(t, "c00", out.File.Path, 200, false)} {
		if err := s.Write(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	c1 := dockerChunk(t, "c1", out.File.Path, 300, true)
	if err := s.Write(ctx, c1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "lake", "node-1-c1.parquet")
	st1, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := open().Write(ctx, c1); err != nil {
		t.Fatalf("c1 again after the restart: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) == st1.Size() {
		t.Fatalf("c1 encoded to %d bytes before and after the restart: the test needs encodings that differ", len(data))
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the replaced file is not whole: %v", err)
	}
	if n := pf.NumRows(); n != 300 {
		t.Errorf("replaced file has %d rows, want 300", n)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "lake"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 3 {
		t.Errorf("lake holds %q, want the three chunks' files and nothing else", names)
	}
}

// TestFileSinkPathIsAFolder: a file output's path is a folder with or
// without its trailing '/' (an S3 path is a key prefix; a local one that
// made /data/outNODE-ID.jsonl beside /data/out would surprise).
func TestFileSinkPathIsAFolder(t *testing.T) {
	dir := t.TempDir()
	_, out := sinktest.Output(t, dir, "  - type: file\n    name: lake\n    format: jsonl\n    path: "+dir+"/out\n")
	s, err := New(Options{Output: out, Node: "node-1", DataDir: dir, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), dockerChunk(t, "c1", out.File.Path, 10, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "node-1-c1.jsonl")); err != nil {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("want the file in the folder out/: %v (the data dir holds %q)", err, names)
	}
}
