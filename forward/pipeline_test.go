package forward

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/testutil"
)

// gatedLog is a CommitLog whose commits complete when the test says so:
// write n waits for gate n.
type gatedLog struct {
	mu    sync.Mutex
	gates []chan error
}

func (g *gatedLog) gate(i int) chan error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.gates) <= i {
		g.gates = append(g.gates, make(chan error, 1))
	}
	return g.gates[i]
}

func (g *gatedLog) WaitCommitted(ctx context.Context, lo, _ uint64) error {
	select {
	case err := <-g.gate(int(lo)):
		g.gate(int(lo)) <- err // later waiters of the same batch see it too
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestPipelinedAcks: the connection reads and hands on requests while the
// commit of earlier ones is pending; acks wait for their batch's commit and
// leave in request order; a request without a chunk option waits for
// nothing; a failed commit withholds the acks of its batch only.
func TestPipelinedAcks(t *testing.T) {
	log := &gatedLog{}
	coll := newCollector()
	// The batch of tag "a" waits for gate 0, "b" for gate 1, …
	coll.hook = func(_ context.Context, b *event.Batch) error {
		if b.Commit == nil {
			return errors.New("no Commit handed on")
		}
		n := uint64(b.Tag[0] - 'a')
		b.Commit.Add(log, n, n)
		return nil
	}
	ts := startServer(t, testSource(), coll)
	c := dial(t, ts.Addr())

	// Batch 0: two requests with acks read together (one write).
	c.send(cat(arr(str("a"), num(T0), r1, chunkOpt("1")), arr(str("a"), num(T0), r1, chunkOpt("2"))), 0)
	coll.waitCount(t, 2, 5*time.Second)
	// Batch 1, while batch 0's commit is pending: read and handed on.
	c.send(arr(str("b"), num(T0), r1, chunkOpt("3")), 0)
	coll.waitCount(t, 3, 5*time.Second)
	// Batch 2: no chunk option; handed on although nothing is durable yet.
	c.send(arr(str("c"), num(T0), r1), 0)
	coll.waitCount(t, 4, 5*time.Second)
	if n := metricValue(ts.m.acks); n != 0 {
		t.Fatalf("%v acks before any commit", n)
	}
	// Batch 1's commit completes first: its ack still waits for batch 0's.
	log.gate(1) <- nil
	log.gate(0) <- nil
	for _, want := range []string{"1", "2", "3"} {
		if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str(want)) {
			t.Fatalf("ack %q: got %x, %v", want, a, err)
		}
	}
	// A failed commit: no ack for its request; the next one is acked.
	c.send(arr(str("d"), num(T0), r1, chunkOpt("4")), 0)
	coll.waitCount(t, 5, 5*time.Second)
	log.gate(3) <- errors.New("disk on fire")
	c.send(arr(str("e"), num(T0), r1, chunkOpt("5")), 0)
	coll.waitCount(t, 6, 5*time.Second)
	log.gate(4) <- nil
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("5")) {
		t.Fatalf("after a failed commit: got %x, %v, want the ack of 5", a, err)
	}
	if n := ts.errCount(reasonConsumeFailed); n != 1 {
		t.Errorf("consume_failed = %v, want 1", n)
	}
	// The counter moves just after the write the client has read.
	testutil.WaitUntil(t, 5*time.Second, "4 acks counted", func() bool { return metricValue(ts.m.acks) >= 4 })
	if n := metricValue(ts.m.acks); n != 4 {
		t.Errorf("acks_total = %v, want 4", n)
	}
}
