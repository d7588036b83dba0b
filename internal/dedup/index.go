package dedup

import (
	"crypto/sha256"
	"sync"
	"time"
)

// index remembers the chunk ids accepted recently (and when), bounded by a
// window and a number of ids, and the ids whose first copy is being
// consumed right now. Safe for concurrent use.
type index struct {
	mu       sync.Mutex
	window   time.Duration // the longest window a lookup uses
	max      int
	seen     map[string]time.Time // id key → accepted at
	order    []entry              // FIFO of additions; order[head:] are live
	head     int
	inflight map[string]chan struct{} // ids being consumed → closed when done
}

type entry struct {
	id string
	at time.Time
}

// keyMax bounds the bytes kept per id.
const keyMax = 64

// key is the map key of a chunk id: the id itself, or its SHA-256 when it
// is longer than keyMax bytes.
func key(chunk []byte) string {
	if len(chunk) <= keyMax {
		return string(chunk)
	}
	sum := sha256.Sum256(chunk)
	return "\x00" + string(sum[:])
}

func newIndex(window time.Duration, max int) *index {
	return &index{window: window, max: max, seen: map[string]time.Time{}, inflight: map[string]chan struct{}{}}
}

// tryClaim: see Store.TryClaim.
func (x *index) tryClaim(chunk []byte, window time.Duration, now func() time.Time) (dup bool, release func(accepted bool), busy <-chan struct{}) {
	k := key(chunk)
	x.mu.Lock()
	if at, ok := x.seen[k]; ok && now().Sub(at) < window {
		x.mu.Unlock()
		return true, nil, nil
	}
	if wait, ok := x.inflight[k]; ok {
		x.mu.Unlock()
		return false, nil, wait
	}
	done := make(chan struct{})
	x.inflight[k] = done
	x.mu.Unlock()
	return false, func(accepted bool) {
		x.mu.Lock()
		if accepted {
			x.addLocked(k, now())
		}
		delete(x.inflight, k)
		x.mu.Unlock()
		close(done)
	}, nil
}

// contains reports whether chunk was accepted within window before now.
func (x *index) contains(chunk []byte, window time.Duration, now time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	at, ok := x.seen[key(chunk)]
	return ok && now.Sub(at) < window
}

// add records chunk as accepted at.
func (x *index) add(chunk []byte, at time.Time) {
	x.mu.Lock()
	x.addLocked(key(chunk), at)
	x.mu.Unlock()
}

// addLocked records id as accepted at, forgetting ids older than the
// window (from the front of the FIFO) and the oldest ones beyond max. An
// id known with a later time keeps it.
func (x *index) addLocked(id string, at time.Time) {
	if old, ok := x.seen[id]; ok && !at.After(old) {
		return
	}
	for x.head < len(x.order) {
		e := x.order[x.head]
		if len(x.order)-x.head < x.max && at.Sub(e.at) < x.window {
			break
		}
		if old, ok := x.seen[e.id]; ok && old.Equal(e.at) {
			delete(x.seen, e.id)
		}
		x.order[x.head] = entry{}
		x.head++
	}
	if x.head > 64 && x.head > len(x.order)/2 {
		x.order = append(x.order[:0], x.order[x.head:]...)
		x.head = 0
	}
	x.seen[id] = at
	x.order = append(x.order, entry{id: id, at: at})
}

// setLimits changes the window and the bound; the next addition applies
// them.
func (x *index) setLimits(window time.Duration, max int) {
	x.mu.Lock()
	x.window, x.max = window, max
	x.mu.Unlock()
}

// len returns the number of ids remembered.
func (x *index) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.seen)
}
