package forward

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
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

// Long chunk ids are remembered by their hash: memory per id is bounded.
func TestDedupLongIDs(t *testing.T) {
	d := newDedup(time.Minute, 10)
	long := []byte(strings.Repeat("x", 1<<20))
	now := time.Now()
	d.add(long, now)
	if !d.contains(long, now) || d.contains(append(long[:len(long)-1:len(long)-1], 'y'), now) {
		t.Fatal("long ids not told apart")
	}
	for k := range d.seen {
		if len(k) > dedupKeyMax+1 {
			t.Fatalf("kept a %d-byte key", len(k))
		}
	}
}
