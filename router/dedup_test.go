package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
)

// markSeen records the dedup mark and delivery number of each hand-over.
type markSeen struct {
	name string
	mu   *sync.Mutex
	got  *[]string
}

func (m *markSeen) Consume(_ context.Context, b *event.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	batch := uint64(0)
	if b.Dedup != nil {
		batch = b.Dedup.Batch
	}
	*m.got = append(*m.got, fmt.Sprintf("%s %s batch=%d %d/%d", m.name, b.Tag, batch, b.Delivery, b.Deliveries))
	return nil
}

// A marked batch goes on with its mark; the hand-overs to buffered
// outputs are numbered (here: two tags after rewrite_tag, one of them to a
// copy of a file store and a stdout store, which is not counted), so that
// a restart can tell whether all of them were stored. An unmarked batch
// is not numbered.
func TestDeliveriesNumbered(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
sources: [{type: forward}]
pipeline:
  - type: rewrite_tag
    match: app
    rules:
      - key: kind
        pattern: "^b$"
        tag: "b.${tag}"
outputs:
  - type: copy
    name: both
    match: b.**
    stores:
      - {type: file, name: f1, path: /tmp/x/}
      - {type: stdout, name: out}
  - {type: file, name: f2, match: "**", path: /tmp/y/}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	outs := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		outs[o.Name] = &markSeen{name: o.Name, mu: &mu, got: &got}
	}
	r, err := New(Options{Config: cfg, Outputs: outs, Hostname: "h", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(kind string) event.Event {
		return event.Event{Time: 1, Record: []byte("\x81\xa4kind\xa1" + kind)}
	}
	b := &event.Batch{Tag: "app", Events: []event.Event{rec("a"), rec("b"), rec("a")},
		Dedup: &dedup.Mark{Batch: 7}}
	if err := r.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	b.Dedup = nil
	if err := r.Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := `f1 b.app batch=0 0/0
f1 b.app batch=7 2/2
f2 app batch=0 0/0
f2 app batch=7 1/2
out b.app batch=0 0/0
out b.app batch=7 0/0`
	if s := strings.Join(got, "\n"); s != want {
		t.Errorf("hand-overs:\n%s\nwant:\n%s", s, want)
	}
}
