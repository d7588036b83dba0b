package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// fixtureConfig is the pipeline of ../shared/fixtures/event-split.fluent.conf
// (parse + two rewrites + copy), written natively.
const fixtureConfig = `
sources:
  - type: forward
pipeline:
  - type: parse
    match: docker.shop
    key: log
    format: json
    time_key: time
    time_type: string
    time_format: "%Y-%m-%dT%H:%M:%SZ"
  - type: rewrite_tag
    match: docker.shop
    unmatched: drop
    rules:
      - key: log_type
        pattern: EVENT
        tag: shop.event
  - type: rewrite_tag
    match: shop.event
    unmatched: drop
    rules:
      - key: event_type
        pattern: '^([\w_]+)$'
        tag: ${tag}.$1
outputs:
  - type: null
    name: errors
    match: maruta.error.**
  - type: copy
    match: shop.event.**
    stores:
      - type: null
        name: s3
      - type: null
        name: archive
`

type discard struct{ n int }

func (d *discard) Consume(_ context.Context, b *event.Batch) error { d.n += len(b.Events); return nil }

func benchRouter(b *testing.B, yaml string) (*Router, *discard) {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	d := &discard{}
	outs := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		outs[o.Name] = d
	}
	r, err := New(Options{Config: cfg, Outputs: outs, Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return r, d
}

// dockerRecord builds a record as Docker's fluentd log driver sends it.
func dockerRecord(log string) []byte {
	rec := msgpack.AppendMapHeader(nil, 4)
	rec = msgpack.AppendString(rec, "container_id")
	rec = msgpack.AppendString(rec, strings.Repeat("3f9c2d1e", 8))
	rec = msgpack.AppendString(rec, "container_name")
	rec = msgpack.AppendString(rec, "/shop-api-1")
	rec = msgpack.AppendString(rec, "source")
	rec = msgpack.AppendString(rec, "stdout")
	rec = msgpack.AppendString(rec, "log")
	rec = msgpack.AppendString(rec, log)
	return rec
}

var eventTypes = []string{"purchase", "login", "logout", "add_to_cart", "search", "view_item", "checkout", "refund"}

func dockerBatch(tag string, n int, line func(i int) string) *event.Batch {
	b := &event.Batch{Tag: tag}
	t0 := event.FromUnix(time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Unix(), 0)
	for i := 0; i < n; i++ {
		b.Events = append(b.Events, event.Event{Time: t0 + event.Time(i), Record: dockerRecord(line(i))})
	}
	return b
}

func eventLine(i int) string {
	return fmt.Sprintf(`{"time":"2026-11-22T13:%02d:%02dZ","level":"info","log_type":"EVENT","event_type":"%s","user_id":%d,"session":"s-%08x","amount":%d.%02d,"msg":"user completed action"}`,
		i/60%60, i%60, eventTypes[i%len(eventTypes)], 100000+i, i*7919, i%500, i%100)
}

func accessLine(i int) string {
	return fmt.Sprintf(`{"time":"2026-11-22T13:%02d:%02dZ","level":"info","log_type":"ACCESS","method":"GET","path":"/api/items/%d","status":200,"latency_ms":%d}`,
		i/60%60, i%60, i, i%250)
}

func runBench(b *testing.B, r *Router, batch *event.Batch) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.Consume(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(batch.Events))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFixturePipeline: parse + two rewrites + copy on Docker-shaped
// events, every one an EVENT (both rewrites fire), 256 per batch.
func BenchmarkFixturePipeline(b *testing.B) {
	r, d := benchRouter(b, fixtureConfig)
	runBench(b, r, dockerBatch("docker.shop", 256, eventLine))
	if d.n == 0 {
		b.Fatal("nothing delivered")
	}
}

// BenchmarkFixturePipelineMixed: half EVENT, half ACCESS (dropped after the
// first rewrite), the fixture's real mix.
func BenchmarkFixturePipelineMixed(b *testing.B) {
	r, _ := benchRouter(b, fixtureConfig)
	runBench(b, r, dockerBatch("docker.shop", 256, func(i int) string {
		if i%2 == 0 {
			return eventLine(i)
		}
		return accessLine(i)
	}))
}

// BenchmarkParse: the embedded default's parse step (reserve_data,
// remove_key_name_field) on JSON log lines.
func BenchmarkParse(b *testing.B) {
	r, _ := benchRouter(b, `
sources: [{type: forward}]
pipeline:
  - type: parse
    key: log
    format: json
    reserve_data: true
    remove_key_name_field: true
outputs: [{type: null}]
`)
	runBench(b, r, dockerBatch("docker.shop", 256, eventLine))
}

// BenchmarkRewrite: one rewrite_tag step with a capture, on records that
// already hold the fields.
func BenchmarkRewrite(b *testing.B) {
	r, _ := benchRouter(b, `
sources: [{type: forward}]
pipeline:
  - type: rewrite_tag
    match: app
    rules:
      - key: level
        pattern: ^(debug|trace)$
        tag: app.noise
      - key: event_type
        pattern: '^([\w_]+)$'
        tag: app.event.$1
outputs: [{type: null}]
`)
	batch := &event.Batch{Tag: "app"}
	for i := 0; i < 256; i++ {
		rec := msgpack.AppendMapHeader(nil, 3)
		rec = msgpack.AppendString(rec, "level")
		rec = msgpack.AppendString(rec, "info")
		rec = msgpack.AppendString(rec, "event_type")
		rec = msgpack.AppendString(rec, eventTypes[i%len(eventTypes)])
		rec = msgpack.AppendString(rec, "user")
		rec = msgpack.AppendInt(rec, int64(i))
		batch.Events = append(batch.Events, event.Event{Record: rec})
	}
	runBench(b, r, batch)
}

// BenchmarkDefaultPipeline: the embedded default (concat_partials + parse)
// on whole Docker lines.
func BenchmarkDefaultPipeline(b *testing.B) {
	cfg, err := config.Default()
	if err != nil {
		b.Fatal(err)
	}
	d := &discard{}
	outs := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		outs[o.Name] = d
	}
	r, err := New(Options{Config: cfg, Outputs: outs, Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	runBench(b, r, dockerBatch("docker.shop", 256, accessLine))
}

// BenchmarkTagLookup: the per-tag cache that replaces pattern matching on
// the hot path, across 64 distinct tags.
func BenchmarkTagLookup(b *testing.B) {
	r, _ := benchRouter(b, fixtureConfig)
	st := r.getState()
	defer r.putState(st)
	tags := make([][]byte, 64)
	for i := range tags {
		tags[i] = []byte(fmt.Sprintf("shop.event.type%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.last = nil
		if p := r.plans.getBytes(st, tags[i%len(tags)]); p.out < 0 {
			b.Fatal("unroutable")
		}
	}
}
