package forward

import (
	"crypto/sha256"
	"sync"
	"time"
)

// dedup remembers the chunk ids of requests accepted recently, so that a
// request a client resends because its ack got lost is acked again without
// being ingested twice (source option dedup). A copy that arrives while
// another copy of the same chunk id is being consumed (a client that gave
// up waiting resends while a paused server catches up) waits for that one's
// outcome: see claim. Memory is bounded by max ids of at most dedupKeyMax
// bytes each (longer ids are kept as their SHA-256). Safe for concurrent use.
type dedup struct {
	window time.Duration
	max    int

	mu       sync.Mutex
	seen     map[string]time.Time // chunk id (raw msgpack) → last accepted at
	order    []dedupEntry         // FIFO of additions; order[head:] are live
	head     int
	inflight map[string]chan struct{} // ids being consumed → closed when done
}

// dedupKeyMax bounds the bytes kept per id.
const dedupKeyMax = 64

// dedupKey is the map key of a chunk id.
func dedupKey(chunk []byte) string {
	if len(chunk) <= dedupKeyMax {
		return string(chunk)
	}
	sum := sha256.Sum256(chunk)
	return "\x00" + string(sum[:])
}

// claim decides what to do with a request carrying chunk: dup is true when
// the id was accepted within the window (ack without ingesting). Otherwise
// the caller ingests it and must call release with whether that succeeded;
// until then another request with the same id waits in claim, so two
// copies are never ingested at once.
func (d *dedup) claim(chunk []byte, now func() time.Time) (dup bool, release func(accepted bool)) {
	for {
		dup, release, busy := d.tryClaim(chunk, now)
		if busy == nil {
			return dup, release
		}
		<-busy
	}
}

// tryClaim is claim without the wait: when another copy of chunk is being
// consumed it returns busy, closed once that copy's outcome is known (then
// claim again).
func (d *dedup) tryClaim(chunk []byte, now func() time.Time) (dup bool, release func(accepted bool), busy <-chan struct{}) {
	key := dedupKey(chunk)
	d.mu.Lock()
	if at, ok := d.seen[key]; ok && now().Sub(at) < d.window {
		d.mu.Unlock()
		return true, nil, nil
	}
	if wait, ok := d.inflight[key]; ok {
		d.mu.Unlock()
		return false, nil, wait
	}
	if d.inflight == nil {
		d.inflight = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	d.inflight[key] = done
	d.mu.Unlock()
	return false, func(accepted bool) {
		if accepted {
			d.addKey(key, now())
		}
		d.mu.Lock()
		delete(d.inflight, key)
		d.mu.Unlock()
		close(done)
	}, nil
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
	at, ok := d.seen[dedupKey(chunk)]
	return ok && now.Sub(at) < d.window
}

// add records chunk as accepted now, forgetting ids older than the window
// and the oldest ones beyond max.
func (d *dedup) add(chunk []byte, now time.Time) { d.addKey(dedupKey(chunk), now) }

func (d *dedup) addKey(id string, now time.Time) {
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
	d.seen[id] = now
	d.order = append(d.order, dedupEntry{id: id, at: now})
}

// len returns the number of ids remembered.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}
