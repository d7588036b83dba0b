package forward

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// Entries of every size, many of them cut by the end of a block (64 KiB,
// then 1 MiB; records up to 3 MiB span several), decode from gzip and zstd
// exactly as from the same payload uncompressed; the bytes a request held
// go back to the budget once the next one starts, and the blocks are
// reused.
func TestInflateAcrossBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var payload []byte
	n := 0
	for size := 0; size < 12<<20; n++ {
		l := r.IntN(2000)
		switch r.IntN(50) {
		case 0:
			l = 64<<10 + r.IntN(4<<10) // about a first block
		case 1:
			l = 1<<20 + r.IntN(2<<20) // over one or two blocks
		}
		e := entry(et(T0, int64(n)), rec("n", fmt.Sprint(n), "log", strings.Repeat(string(rune('a'+n%26)), l)))
		payload = append(payload, e...)
		size += len(e)
	}
	plain := newDecoder(100, 64<<20)
	var want request
	if rerr := plain.decode(arr(str("t"), bin(payload)), 0, &want); rerr != nil {
		t.Fatal(rerr)
	}
	if len(want.events) != n {
		t.Fatalf("plain: %d events, want %d", len(want.events), n)
	}
	budget := newInflateBudget(64<<20, nil)
	budget.after = time.Hour // this test is about reuse: no give-back timer while it runs
	d := newDecoder(100, 64<<20)
	d.budget = budget
	defer d.close()
	for _, kind := range []string{"gzip", "zstd"} {
		z := gz(payload)
		if kind == "zstd" {
			z = zst(payload)
		}
		for round := range 2 {
			var got request
			if rerr := d.decode(arr(str("t"), bin(z), obj(str("compressed"), str(kind))), 0, &got); rerr != nil {
				t.Fatalf("%s: %v", kind, rerr)
			}
			if len(got.events) != n {
				t.Fatalf("%s: %d events, want %d", kind, len(got.events), n)
			}
			for i := range got.events {
				if got.events[i].Time != want.events[i].Time || !bytes.Equal(got.events[i].Record, want.events[i].Record) {
					t.Fatalf("%s round %d: event %d differs (%d vs %d bytes)", kind, round, i, len(got.events[i].Record), len(want.events[i].Record))
				}
			}
			if h := budget.inUse(); h < float64(len(payload)) || h > 2*float64(len(payload))+8<<20 {
				t.Errorf("%s: the request holds %.0f bytes of the budget for %d inflated", kind, h, len(payload))
			}
		}
	}
	d.release()
	if h := budget.inUse(); h != 0 {
		t.Errorf("%.0f bytes held after release", h)
	}
	budget.mu.Lock()
	kept := len(budget.free)
	budget.mu.Unlock()
	if kept == 0 {
		t.Error("no block kept for reuse")
	}
}

// The budget: a request alone may use up to max_decompressed_size; two at
// once share the budget, and the one that cannot get more within the wait
// is refused (decompress_budget, connection closed) and gives back what it
// held; the other then goes on. Once nothing is held after a large spike,
// the memory is returned to the OS. Goroutine-and-timer logic: it runs in
// a synctest bubble, where the waits are exact and instant.
func TestInflateBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newInflateBudget(10<<20, nil)
		b.wait = 200 * time.Millisecond
		var w1, w2 time.Duration
		if !b.acquire(8<<20, 0, &w1) || !b.acquire(8<<20, 8<<20, &w1) {
			t.Fatal("a lone holder was refused")
		}
		start := time.Now()
		if b.acquire(4<<20, 0, &w2) {
			t.Fatal("a second holder got more than the budget")
		}
		if el := time.Since(start); el != b.wait || w2 != b.wait {
			t.Errorf("refused after %s (waited %s), want the wait", el, w2)
		}
		if b.acquire(1, 0, &w2) {
			t.Error("a request that used up its wait got more")
		}
		// A waiter is let in when bytes come back.
		got := make(chan bool)
		var w3 time.Duration
		go func() { got <- b.acquire(4<<20, 0, &w3) }()
		synctest.Wait() // the waiter is blocked, waiting for bytes
		b.release(16 << 20)
		if !<-got {
			t.Fatal("the waiter was refused after the bytes came back")
		}
		b.release(4 << 20)
		b.mu.Lock()
		if b.giveBack != nil || b.used != 0 {
			t.Error("memory given back after a small spike")
		}
		b.mu.Unlock()

		big := newInflateBudget(64<<20, nil)
		big.after = 0
		big.recycle(big.block(blockSize))
		if !big.acquire(giveBackAbove, 0, &w1) {
			t.Fatal("refused")
		}
		big.release(giveBackAbove)
		time.Sleep(big.after + time.Millisecond)
		synctest.Wait() // the give-back timer fired and its function returned
		big.mu.Lock()
		defer big.mu.Unlock()
		if big.returns != 1 || len(big.free) != 0 {
			t.Errorf("memory not given back: %d returns, %d free blocks", big.returns, len(big.free))
		}
	})
}

// Through a server: two compressed requests that together need more than
// the budget; one is refused with decompress_budget, the other is stored
// and acked.
func TestInflateBudgetServer(t *testing.T) {
	src := testSource()
	src.MaxDecompressedSize = 6 << 20
	coll := newCollector()
	hold := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	coll.hook = func(_ context.Context, b *event.Batch) error {
		once.Do(func() { close(entered); <-hold })
		return nil
	}
	ts := startServer(t, src, coll)
	ts.budget.wait = 300 * time.Millisecond
	payload := cat(bytes.Repeat(entry(et(T0, 0), rec("log", strings.Repeat("x", 1000))), 4<<10)) // 4 MiB
	req := func(id string) []byte {
		return arr(str("app"), bin(gz(payload)), obj(str("compressed"), str("gzip"), str("chunk"), str(id)))
	}
	// The first request's batch is held in Consume: its blocks stay held.
	c1 := dial(t, ts.Addr())
	c1.send(req("one"), 0)
	<-entered
	c2 := dial(t, ts.Addr())
	c2.send(req("two"), 0)
	if _, err := c2.readAck(5 * time.Second); err == nil {
		t.Fatal("the second request was acked past the budget")
	}
	if n := ts.errCount(reasonDecompressBudget); n != 1 {
		t.Errorf("decompress_budget = %v, want 1", n)
	}
	close(hold)
	if a, err := c1.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("one")) {
		t.Fatalf("first request: %x %v", a, err)
	}
}
