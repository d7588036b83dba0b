package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/layout"
	"github.com/marutalog/maruta/sinks/schema"
	"github.com/marutalog/maruta/sinks/sinktest"
)

func TestJSONLFileOutput(t *testing.T) {
	dir := t.TempDir()
	l := newLake(t, "  - type: file\n    name: arch\n    format: jsonl\n    compression: gzip\n    time_format: \"%Y-%m-%d %H:%M:%S\"\n    path: "+dir+"/${tag}/%Y%m%d/\n")
	tm := time.Date(2026, 11, 22, 13, 4, 5, 0, time.UTC)
	l.write(t, l.chunk(slice13,
		ev(t, "shop.event", tm, map[string]any{"event_type": "order", "n": 1, "time": "overwritten", "nested": map[string]any{"k": []any{1.5, nil}}}),
		ev(t, "shop.event", tm.Add(time.Second), map[string]any{"s": "quote\" \xff"})))
	p := filepath.Join(dir, "shop.event", "20261122", "node-1-c0001.jsonl.gz")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	want := `{"event_type":"order","n":1,"nested":{"k":[1.5,null]},"time":"2026-11-22 13:04:05"}` + "\n" +
		`{"s":"quote\" ` + "\ufffd" + `","time":"2026-11-22 13:04:06"}` + "\n"
	if string(plain) != want {
		t.Errorf("got\n%s\nwant\n%s", plain, want)
	}
}

func TestJSONLReadByDuckDB(t *testing.T) {
	db := tu.NewDuckDB(t)
	dir := t.TempDir()
	l := newLake(t, "  - type: file\n    name: j\n    format: jsonl\n    path: "+dir+"/${tag}/\n")
	var evs []sinktest.Event
	for i := 0; i < 100; i++ {
		evs = append(evs, ev(t, "t", slice13.Add(time.Duration(i)*time.Millisecond), map[string]any{"i": i, "big": int64(1) << 62, "u": "✓"}))
	}
	l.write(t, l.chunk(slice13, evs...))
	r := db.Query(t, "SELECT count(*) AS n, max(i) AS mx, max(big)::VARCHAR AS big, min(\"time\")::VARCHAR AS t0, any_value(u) AS u FROM read_json_auto("+tu.SQLString(dir+"/t/*.jsonl")+")").Maps()[0]
	if fmt.Sprint(r["n"]) != "100" || fmt.Sprint(r["mx"]) != "99" || r["big"] != "4611686018427387904" || r["u"] != "✓" || !strings.HasPrefix(fmt.Sprint(r["t0"]), "2026-11-22 13:00:00") {
		t.Errorf("%v", r)
	}
}

func TestStdoutAndNull(t *testing.T) {
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	s := NewStdout(&buf, Options{Registerer: reg})
	b := &event.Batch{Tag: "app.x", Events: []event.Event{
		{Time: event.Time(time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC).UnixNano()), Record: sinktest.Msgpack(t, map[string]any{"log": "hi", "tag": "mine"})},
		{Time: 0, Record: []byte{0x01}},
	}}
	if err := s.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), `{"log":"hi","time":"2026-01-02T03:04:05.006Z","tag":"app.x"}`+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if n := counter(t, reg, "maruta_sink_dropped_events_total", "reason", "invalid_record"); n != 1 {
		t.Errorf("invalid record counted %v", n)
	}
	// Concurrent batches do not interleave.
	buf.Reset()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				s.Consume(context.Background(), &event.Batch{Tag: "t", Events: []event.Event{{Record: sinktest.Msgpack(t, map[string]any{"a": 1})}, {Record: sinktest.Msgpack(t, map[string]any{"a": 2})}}})
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		var a, b map[string]any
		if json.Unmarshal([]byte(lines[i]), &a) != nil || json.Unmarshal([]byte(lines[i+1]), &b) != nil || a["a"] != 1.0 || b["a"] != 2.0 {
			t.Fatalf("lines %d-%d interleaved: %s / %s", i, i+1, lines[i], lines[i+1])
		}
	}

	n := NewNull(Options{Registerer: reg})
	n.Consume(context.Background(), b)
	if v := counter(t, reg, "maruta_sink_dropped_events_total", "output", "null", "reason", "null_output"); v != 2 {
		t.Errorf("null output counted %v", v)
	}
}

func TestFileSinkAtomicAndIdempotent(t *testing.T) {
	l := newLake(t, "  - type: file\n    name: lake\n")
	c := l.chunk(slice13, ev(t, "a", slice13, map[string]any{"x": 1}))
	l.write(t, c)
	l.write(t, c) // a retry after a crash: same file, replaced
	var files []string
	filepath.Walk(filepath.Join(l.dir, "lake"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 || !strings.HasSuffix(files[0], "a/dt=2026-11-22/hour=13/node-1-c0001.parquet") {
		t.Errorf("files %v", files)
	}
	// A failing encode leaves no file behind: a canceled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var evs []sinktest.Event
	for i := 0; i < 5000; i++ {
		evs = append(evs, ev(t, "a", slice13.Add(time.Hour), map[string]any{"i": i}))
	}
	big := l.chunk(slice13.Add(time.Hour), evs...)
	if err := l.sink.Write(ctx, big); err == nil {
		t.Fatal("canceled write succeeded")
	}
	left, _ := filepath.Glob(filepath.Join(l.dir, "lake", "a", "dt=2026-11-22", "hour=14", "*"))
	hidden, _ := filepath.Glob(filepath.Join(l.dir, "lake", "a", "dt=2026-11-22", "hour=14", ".*"))
	if len(left)+len(hidden) != 0 {
		t.Errorf("left behind: %v %v", left, hidden)
	}
}

func TestConcurrentWritesShareSchema(t *testing.T) {
	db := tu.NewDuckDB(t)
	l := newLake(t, "  - type: file\n    name: lake\n")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var evs []sinktest.Event
			for i := 0; i < 200; i++ {
				evs = append(evs, ev(t, "a", slice13, map[string]any{"common": i, fmt.Sprintf("only_%d", w): "v"}))
			}
			c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: fmt.Sprintf("w%d", w), Output: "lake", Path: layout.TagResolver(l.out.File.Path)("a"), Tag: "a", Slice: slice13}, Events: evs}
			errs <- l.sink.Write(context.Background(), c)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := schema.Load(l.dir, l.out)
	if len(s.Columns) != 9 {
		t.Errorf("schema %+v", s.Columns)
	}
	r := db.Query(t, "SELECT count(*), count(only_0), count(only_7), sum(common) FROM "+l.read())
	if fmt.Sprint(r.Rows[0]) != "[1600 200 200 159200]" {
		t.Errorf("%v", r.Rows)
	}
}
