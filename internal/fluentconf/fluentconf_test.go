package fluentconf_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/fluentconf"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/router"
)

var update = flag.Bool("update", false, "rewrite testdata/convert/*.yaml")

// testEnv is the environment the converted configs are loaded with.
var testEnv = map[string]string{
	"AWS_ACCESS_KEY":        "AKIAEXAMPLE",
	"AWS_SECRET_ACCESS_KEY": "secret/with+chars",
	"AWS_S3_BUCKET":         "shop-logs",
	"FLUENT_SHARED_KEY":     "s3cr3t",
	"STAGE":                 "prod",
	"MARUTA_DATA_DIR":       "/tmp/maruta-test",
	"TD_DATABASE":           "shop",
	"TD_API_KEY":            "1/td-api-key",
}

func lookup(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }

// TestConvertGolden converts every testdata/convert/*.conf, compares the
// YAML with the .yaml beside it, loads it with config.Parse and builds the
// router from it (check mode), so the output is not only text but a config
// maruta runs.
func TestConvertGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/convert/*.conf")
	if len(files) < 3 {
		t.Fatalf("want at least 3 cases, have %d", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".conf")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fluentconf.Convert(filepath.Base(f), data)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			golden := strings.TrimSuffix(f, ".conf") + ".yaml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("YAML differs from %s; got:\n%s", golden, got)
			}
			cfg, err := config.Parse(name+".yaml", got, lookup)
			if err != nil {
				t.Fatalf("converted YAML does not load: %v\n%s", err, got)
			}
			if _, err := router.New(router.Options{Config: cfg, Hostname: "h"}); err != nil {
				t.Fatalf("router rejects the converted config: %v", err)
			}
		})
	}
}

type recorder struct {
	name string
	mu   *sync.Mutex
	out  *[]string
}

func (r *recorder) Consume(_ context.Context, b *event.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range b.Events {
		js, _, _, _ := msgpack.AppendJSON(nil, ev.Record, 100)
		*r.out = append(*r.out, fmt.Sprintf("%s %s %s %s", r.name, b.Tag, ev.Time.Std().Format(time.RFC3339), js))
	}
	return nil
}

// TestFixtureEndToEnd converts the shared fixture, loads it with its
// environment, and runs Docker-shaped events through the router: EVENT
// records reach both stores under shop.event.<event_type>, the rest goes
// where fluentd sent it (nowhere).
func TestFixtureEndToEnd(t *testing.T) {
	data, err := os.ReadFile("testdata/convert/event-split.conf")
	if err != nil {
		t.Fatal(err)
	}
	y, err := fluentconf.Convert("event-split.fluent.conf", data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("event-split.fluent.conf (converted)", y, lookup)
	if err != nil {
		t.Fatal(err)
	}
	// The S3 store keeps the per-event-type prefix with hourly folders.
	leaves := cfg.LeafOutputs()
	var s3, file *config.Output
	for _, o := range leaves {
		switch {
		case o.S3 != nil:
			s3 = o
		case o.File != nil:
			file = o
		}
	}
	if s3 == nil || file == nil {
		t.Fatalf("want an s3 and a file store, got %d leaves", len(leaves))
	}
	if s3.S3.Bucket != "shop-logs" || s3.S3.AccessKeyID != "AKIAEXAMPLE" || s3.S3.SecretAccessKey != "secret/with+chars" || s3.S3.Region != "ap-northeast-1" {
		t.Errorf("s3 settings: %+v", s3.S3)
	}
	if s3.S3.Path != "logs/shop-event/${tag_parts[2]}/%Y/%m/%d/%H/" || s3.S3.Format != "parquet" || s3.S3.ObjectKey != config.DefaultObjectKey {
		t.Errorf("s3 path/format/key: %q %q %q", s3.S3.Path, s3.S3.Format, s3.S3.ObjectKey)
	}
	if s3.S3.Buffer.FlushInterval.D() != 10*time.Minute || s3.S3.Buffer.ChunkLimitSize != 128<<20 || s3.S3.Buffer.Timekey.D() != time.Hour {
		t.Errorf("s3 buffer: %+v", s3.S3.Buffer)
	}
	var mu sync.Mutex
	var got []string
	outs := map[string]event.Consumer{}
	for _, o := range leaves {
		outs[o.Name] = &recorder{name: o.Type, mu: &mu, out: &got}
	}
	r, err := router.New(router.Options{Config: cfg, Outputs: outs, Hostname: "h", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := event.FromUnix(time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Unix(), 0)
	docker := func(log string) event.Event {
		rec := msgpack.AppendMapHeader(nil, 4)
		for _, kv := range [][2]string{{"container_id", "0123abcd"}, {"container_name", "/shop"}, {"source", "stdout"}, {"log", log}} {
			rec = msgpack.AppendString(msgpack.AppendString(rec, kv[0]), kv[1])
		}
		return event.Event{Time: t0, Record: rec}
	}
	b := &event.Batch{Tag: "docker.shop", Events: []event.Event{
		docker(`{"log_type":"EVENT","event_type":"purchase","time":"2026-11-22T12:30:00Z","order":42}`),
		docker(`{"log_type":"ACCESS","path":"/"}`),
		docker(`{"log_type":"EVENT","event_type":"signup"}`),
		docker(`not json`),
	}}
	if err := r.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`s3 shop.event.purchase 2026-11-22T12:30:00Z {"log_type":"EVENT","event_type":"purchase","order":42}`,
		`file shop.event.purchase 2026-11-22T12:30:00Z {"log_type":"EVENT","event_type":"purchase","order":42}`,
		`s3 shop.event.signup 2026-11-22T13:00:00Z {"log_type":"EVENT","event_type":"signup"}`,
		`file shop.event.signup 2026-11-22T13:00:00Z {"log_type":"EVENT","event_type":"signup"}`,
		`null maruta.error.docker.shop 2026-11-22T13:00:00Z {"container_id":"0123abcd","container_name":"/shop","source":"stdout","log":"not json"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
