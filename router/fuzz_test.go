package router

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// FuzzConsume feeds arbitrary records (any msgpack the Forward server would
// accept as one value) through a pipeline using every step: nothing panics,
// and every output record is one well-formed msgpack map.
func FuzzConsume(f *testing.F) {
	cfg, err := config.Parse("fuzz.yaml", []byte(`
sources: [{type: forward}]
pipeline:
  - type: concat_partials
  - type: parse
    key: log
    format: json
    reserve_data: true
    remove_key_name_field: true
    hash_value_field: p
    inject_key_prefix: x_
    time_key: t
  - type: parse
    key: $.p.x_msg
    format: regexp
    expression: '/^(?<word>\w+)(?: (?<rest>.*))?$/'
    reserve_data: true
  - type: record
    rename: [{key: a, value: b}]
    set: [{key: c, value: "${tag_parts[-1]}"}]
    remove: [d, $.p.x_e]
  - type: grep
    exclude: [{key: drop, pattern: "^yes$"}]
  - type: rewrite_tag
    max_hops: 3
    rules:
      - {key: level, pattern: '^(\w+)$', tag: 'lvl.$1'}
      - {key: $.p.x_route, pattern: '(.+)', tag: 'r.${tag_parts[0]}.$1'}
outputs:
  - {type: null, name: sink}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		f.Fatal(err)
	}
	check := event.ConsumerFunc(func(_ context.Context, b *event.Batch) error {
		for _, ev := range b.Events {
			n, err := msgpack.Skip(ev.Record, 200)
			if err != nil || n != len(ev.Record) || msgpack.Peek(ev.Record) != msgpack.Map {
				f.Fatalf("malformed output record %x (n=%d, err=%v)", ev.Record, n, err)
			}
		}
		return nil
	})
	r, err := New(Options{Config: cfg, Outputs: map[string]event.Consumer{"sink": check}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"log":"{\"msg\":\"hello world\",\"route\":\"x\",\"e\":1,\"t\":1.5}","a":1,"d":2}`,
		`{"log":"plain","level":"info"}`,
		`{"log":"{\"a\":[1,{\"b\":null}]}","drop":"yes"}`,
		`{"container_id":"c","source":"stdout","log":"x","partial_message":"true","partial_id":"p","partial_ordinal":"1","partial_last":"true"}`,
		`{"container_id":"c","source":"stdout","log":"x","partial_message":"true"}`,
		`{"level":{"nested":true}}`,
	} {
		rec, err := msgpack.AppendFromJSON(nil, []byte(s), 50)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		n, err := msgpack.Skip(rec, 50)
		if err != nil || n != len(rec) || msgpack.Peek(rec) != msgpack.Map {
			return // the Forward server only passes single well-formed maps
		}
		b := &event.Batch{Tag: "app.web", Events: []event.Event{{Record: rec}, {Record: rec}}}
		if err := r.Consume(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if err := r.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
