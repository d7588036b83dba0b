package forward

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// TestDrain: Drain is the graceful shutdown without cancelling Run's
// context: a request in flight is handed on and acked, Drain returns nil
// once the connections are done, and Run returns by itself.
func TestDrain(t *testing.T) {
	s, bc, c, done := serveHeldRequest(t)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- s.Drain(ctx)
	}()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned while a request was processing: %v", err)
	default:
	}
	close(bc.release)
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("1")) {
		t.Fatalf("request was not acked: %x %v", a, err)
	}
	c.expectClosed(5 * time.Second)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	waitRunReturned(t, done, "Drain")
	if ev := bc.coll.take(); len(ev) != 1 || ev[0].Tag != "one" {
		t.Fatalf("events %+v", ev)
	}
	if err := s.Drain(context.Background()); err != nil {
		t.Errorf("second Drain: %v", err)
	}
}

// TestDrainDeadline: a Drain whose context ends while a request is still
// processing returns the context's error; Close then ends the request
// (not acked) and Run returns.
func TestDrainDeadline(t *testing.T) {
	s, bc, c, done := serveHeldRequest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want the deadline", err)
	}
	s.Close()
	waitRunReturned(t, done, "Close")
	c.expectClosed(5 * time.Second)
	if n := bc.coll.count(); n != 0 {
		t.Errorf("%d events handed on after Close", n)
	}
}

// TestDrainNotRunning: a server whose Run never started holds nothing.
func TestDrainNotRunning(t *testing.T) {
	s, err := NewServer(ServerOptions{Config: testSource(), Next: newCollector(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// waitRunReturned fails t unless Run returns nil within 10s of after.
func waitRunReturned(t *testing.T, done chan error, after string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return after %s", after)
	}
}

// serveHeldRequest runs a server (shutdown_quiet 200ms) and sends it one
// request (tag "one", chunk "1"), which its consumer holds until
// bc.release is closed.
func serveHeldRequest(t *testing.T) (*Server, *blockingConsumer, *client, chan error) {
	t.Helper()
	bc := &blockingConsumer{entered: make(chan *event.Batch, 4), release: make(chan struct{}), coll: newCollector()}
	s, _, done := runQuietServer(t, 200*time.Millisecond, bc, nil)
	c := dial(t, s.Addr())
	c.send(arr(str("one"), num(T0), r1, chunkOpt("1")), 0)
	<-bc.entered
	return s, bc, c, done
}
