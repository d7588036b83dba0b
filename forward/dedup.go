package forward

import (
	"sync"
	"time"
)

// dedup remembers the chunk ids of requests accepted recently, so that a
// request a client resends because its ack got lost is acked again without
// being ingested twice (source option dedup). It is best effort: two copies
// in flight at the same moment both go through. Safe for concurrent use.
type dedup struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	seen  map[string]time.Time // chunk id (raw msgpack) → last accepted at
	order []dedupEntry         // FIFO of additions; order[head:] are live
	head  int
}

type dedupEntry struct {
	id string
	at time.Time
}

func newDedup(window time.Duration, max int) *dedup {
	return &dedup{window: window, max: max, seen: map[string]time.Time{}}
}

// contains reports whether chunk was accepted within the window.
func (d *dedup) contains(chunk []byte, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.seen[string(chunk)]
	return ok && now.Sub(at) < d.window
}

// add records chunk as accepted now, forgetting ids older than the window
// and the oldest ones beyond max.
func (d *dedup) add(chunk []byte, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.head < len(d.order) {
		e := d.order[d.head]
		if len(d.order)-d.head < d.max && now.Sub(e.at) < d.window {
			break
		}
		if at, ok := d.seen[e.id]; ok && at.Equal(e.at) {
			delete(d.seen, e.id)
		}
		d.order[d.head] = dedupEntry{}
		d.head++
	}
	if d.head > 64 && d.head > len(d.order)/2 {
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
	id := string(chunk)
	d.seen[id] = now
	d.order = append(d.order, dedupEntry{id: id, at: now})
}

// len returns the number of ids remembered.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}
