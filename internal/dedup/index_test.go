package dedup

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestIndexWindowAndBound(t *testing.T) {
	x := newIndex(time.Minute, 3)
	t0 := time.Now()
	x.add([]byte("a"), t0)
	if !x.contains([]byte("a"), time.Minute, t0.Add(59*time.Second)) || x.contains([]byte("a"), time.Minute, t0.Add(61*time.Second)) {
		t.Fatal("window not applied")
	}
	if x.contains([]byte("a"), 30*time.Second, t0.Add(31*time.Second)) {
		t.Fatal("a lookup's own window not applied")
	}
	x.add([]byte("b"), t0.Add(time.Second))
	x.add([]byte("c"), t0.Add(2*time.Second))
	x.add([]byte("d"), t0.Add(3*time.Second)) // evicts a (bound 3)
	if x.contains([]byte("a"), time.Minute, t0.Add(4*time.Second)) || !x.contains([]byte("b"), time.Minute, t0.Add(4*time.Second)) || x.len() != 3 {
		t.Fatalf("bound not applied: %d ids", x.len())
	}
	x.add([]byte("b"), t0.Add(5*time.Second)) // re-added: the old entry must not evict it later
	x.add([]byte("e"), t0.Add(6*time.Second))
	if !x.contains([]byte("b"), time.Minute, t0.Add(7*time.Second)) {
		t.Fatal("re-added id forgotten")
	}
	x.add([]byte("e"), t0) // known with a later time: kept at that time
	if !x.contains([]byte("e"), time.Minute, t0.Add(65*time.Second)) {
		t.Fatal("an older time replaced a newer one")
	}
	for i := range 10000 {
		x.add([]byte(strconv.Itoa(i)), t0.Add(time.Duration(i)*time.Millisecond+10*time.Second))
	}
	if x.len() > 3 || len(x.order)-x.head > 3 {
		t.Fatalf("grew: %d ids, %d queued", x.len(), len(x.order)-x.head)
	}
	// Everything expires after the window.
	x.add([]byte("late"), t0.Add(time.Hour))
	if x.len() != 1 {
		t.Fatalf("%d ids after the window", x.len())
	}
}

// Long chunk ids are remembered by their hash: memory per id is bounded.
func TestIndexLongIDs(t *testing.T) {
	x := newIndex(time.Minute, 10)
	long := []byte(strings.Repeat("x", 1<<20))
	now := time.Now()
	x.add(long, now)
	if !x.contains(long, time.Minute, now) || x.contains(append(long[:len(long)-1:len(long)-1], 'y'), time.Minute, now) {
		t.Fatal("long ids not told apart")
	}
	for k := range x.seen {
		if len(k) > keyMax+1 {
			t.Fatalf("kept a %d-byte key", len(k))
		}
	}
}
