package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
)

// Two copies of one chunk id in flight at once (a client that gave up on
// a paused server resends while the server catches up): the second waits
// for the first's outcome, then is acked without being ingested.
func TestDedupConcurrentCopies(t *testing.T) {
	src := testSource()
	src.Dedup = &config.Dedup{Window: config.Duration(time.Minute), MaxEntries: 100}
	bc := &blockingConsumer{entered: make(chan *event.Batch, 4), release: make(chan struct{}), coll: newCollector()}
	ts := startServer(t, src, bc)
	req := arr(str("dup"), arr(entry(num(T0), r1), entry(num(T0), r2)), chunkOpt("copy-id"))

	first, second := dial(t, ts.Addr()), dial(t, ts.Addr())
	first.send(req, 0)
	<-bc.entered
	second.send(req, 0)
	select {
	case <-bc.entered:
		t.Fatal("the second copy was handed downstream while the first was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(bc.release)
	for _, c := range []*client{first, second} {
		if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("copy-id")) {
			t.Fatalf("ack: %x %v", a, err)
		}
	}
	if ev := bc.coll.take(); len(ev) != 2 {
		t.Fatalf("ingested %d events, want 2", len(ev))
	}
	if v := metricValue(ts.m.duplicates); v != 2 {
		t.Errorf("duplicate_events_total %v, want 2", v)
	}
}

// When the first copy fails downstream (not acked), the waiting copy is
// ingested.
func TestDedupWaitingCopyAfterFailure(t *testing.T) {
	src := testSource()
	src.Dedup = &config.Dedup{Window: config.Duration(time.Minute), MaxEntries: 100}
	coll := newCollector()
	fails := 1
	block := make(chan struct{})
	entered := make(chan struct{}, 4)
	coll.hook = func(_ context.Context, b *event.Batch) error {
		entered <- struct{}{}
		<-block
		coll.mu.Lock()
		defer coll.mu.Unlock()
		if fails > 0 {
			fails--
			return errors.New("disk full")
		}
		return nil
	}
	ts := startServer(t, src, coll)
	req := arr(str("dup"), arr(entry(num(T0), r1)), chunkOpt("retry-id"))
	first, second := dial(t, ts.Addr()), dial(t, ts.Addr())
	first.send(req, 0)
	<-entered
	second.send(req, 0)
	close(block)
	<-entered // the second copy goes downstream after the first failed
	if a, err := second.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("retry-id")) {
		t.Fatalf("second copy: %x %v", a, err)
	}
	if _, err := first.readAck(300 * time.Millisecond); err == nil {
		t.Fatal("the failed copy was acked")
	}
	if ev := coll.take(); len(ev) != 1 {
		t.Fatalf("ingested %d events, want 1", len(ev))
	}
}

// With a persistent dedup index, a batch of requests with a chunk option
// carries a mark with the ids of its requests that are not resends (raw, as
// sent), so the buffers store them with the events; a request without a
// chunk option (Docker's default) costs nothing: no mark.
func TestDedupMarksBatches(t *testing.T) {
	src := testSource()
	src.Dedup = &config.Dedup{Window: config.Duration(time.Minute), MaxEntries: 100}
	store, err := dedup.Open(dedup.Options{Dir: t.TempDir(), Window: time.Minute, MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	coll := newCollector()
	var mu sync.Mutex
	var marks []string
	coll.hook = func(_ context.Context, b *event.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		if b.Dedup == nil {
			marks = append(marks, fmt.Sprintf("%s: none", b.Tag))
			return nil
		}
		var ids []string
		for _, id := range b.Dedup.IDs {
			ids = append(ids, fmt.Sprintf("%x", id))
		}
		marks = append(marks, fmt.Sprintf("%s: %s", b.Tag, strings.Join(ids, " ")))
		if b.Dedup.At == 0 || b.Dedup.Batch == 0 {
			t.Errorf("mark without time or batch: %+v", b.Dedup)
		}
		return nil
	}
	ts := startServer(t, src, coll, func(o *ServerOptions) { o.Dedup = store })
	c := dial(t, ts.Addr())
	binID := cat([]byte{0xc4, 2}, []byte("b1")) // a bin chunk id
	c.send(cat(
		arr(str("plain"), num(T0), r1),
		arr(str("acked"), arr(entry(num(T0), r1)), chunkOpt("id-1")),
		arr(str("acked"), arr(entry(num(T0), r2)), obj(str("chunk"), binID)),
	), 0)
	for range 2 {
		if _, err := c.readAck(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.send(arr(str("acked"), arr(entry(num(T0), r1)), chunkOpt("id-1")), 0) // a resend: acked, no batch
	if _, err := c.readAck(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := fmt.Sprintf("plain: none\nacked: %x %x", str("id-1"), binID)
	if got := strings.Join(marks, "\n"); got != want {
		t.Errorf("marks:\n%s\nwant:\n%s", got, want)
	}
}
