package dedup

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Store.
type Options struct {
	// Dir holds the record (<data_dir>/dedup); "" keeps the index in
	// memory only (Found and Keep then do nothing useful).
	Dir string
	// Window is how long an id is remembered: the longest window of the
	// sources that use the Store.
	Window time.Duration
	// MaxEntries bounds the ids kept.
	MaxEntries int
	Logger     *slog.Logger
	// Registerer receives the maruta_dedup_* metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Store is the dedup index with its recovery and record. See the package
// documentation.
type Store struct {
	idx *index
	now func() time.Time
	log *slog.Logger
	m   *metrics

	pmu     sync.Mutex
	pending map[uint64]*pendingBatch // batches with some of their frames found

	rmu        sync.Mutex // guards rec
	rec        *record    // nil: memory only, or closed
	persistent bool       // opened with a record
}

type pendingBatch struct {
	at  time.Time
	ids []string // keys
	batchParts
}

// batchParts tracks which frames of a batch were found.
type batchParts struct {
	parts  int
	frames map[int]int // part → its frames
	seen   map[[2]int]bool
}

func (b *batchParts) add(m *Mark) {
	if b.frames == nil {
		b.frames, b.seen = map[int]int{}, map[[2]int]bool{}
	}
	b.parts = m.Parts
	b.frames[m.Part] = m.Frames
	b.seen[[2]int{m.Part, m.Frame}] = true
}

func (b *batchParts) complete() bool {
	need := 0
	for p := 1; p <= b.parts; p++ {
		n, ok := b.frames[p]
		if !ok {
			return false
		}
		need += n
	}
	return len(b.seen) == need
}

// Open builds a Store: with a Dir it locks the folder and reads the record
// (cutting a torn tail) into the index.
func Open(opts Options) (*Store, error) {
	if opts.Window <= 0 || opts.MaxEntries < 1 {
		return nil, fmt.Errorf("open dedup index: window and max_entries must be set")
	}
	s := &Store{idx: newIndex(opts.Window, opts.MaxEntries), now: opts.Now, log: opts.Logger,
		pending: map[uint64]*pendingBatch{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "dedup")
	m, err := newMetrics(opts.Registerer, s)
	if err != nil {
		return nil, fmt.Errorf("open dedup index: %w", err)
	}
	s.m = m
	if opts.Dir == "" {
		return s, nil
	}
	before := s.idx.len()
	rec, cut, err := openRecord(opts.Dir, s.Found)
	if err != nil {
		m.unregister()
		return nil, err
	}
	s.rec, s.persistent = rec, true
	if cut > 0 {
		s.log.Warn("dedup record: cut a torn tail", "file", filepath.Join(opts.Dir, recordName), "bytes_cut", cut)
	}
	s.log.Debug("dedup record read", "ids", s.idx.len()-before, "bytes", rec.size)
	return s, nil
}

// Persistent reports whether the Store keeps ids across restarts (sources
// then mark their batches).
func (s *Store) Persistent() bool { return s.persistent }

// TryClaim decides what to do with a request carrying chunk: dup is true
// when the id was accepted within window (ack without ingesting). Otherwise
// the caller ingests it and must call release with whether it was accepted
// (acked); until then another copy of the id gets busy, closed once the
// outcome is known (then claim again).
func (s *Store) TryClaim(chunk []byte, window time.Duration) (dup bool, release func(accepted bool), busy <-chan struct{}) {
	return s.idx.tryClaim(chunk, window, s.now)
}

// Claim is TryClaim that waits while another copy is being consumed.
func (s *Store) Claim(chunk []byte, window time.Duration) (dup bool, release func(accepted bool)) {
	for {
		dup, release, busy := s.TryClaim(chunk, window)
		if busy == nil {
			return dup, release
		}
		<-busy
	}
}

// Contains reports whether chunk was accepted within window.
func (s *Store) Contains(chunk []byte, window time.Duration) bool {
	return s.idx.contains(chunk, window, s.now())
}

// Add records chunk as accepted at.
func (s *Store) Add(chunk []byte, at time.Time) { s.idx.add(chunk, at) }

// Len returns the number of ids remembered.
func (s *Store) Len() int { return s.idx.len() }

// SetLimits changes the window and the bound (a reload).
func (s *Store) SetLimits(window time.Duration, max int) {
	if window > 0 && max > 0 {
		s.idx.setLimits(window, max)
	}
}

func (s *Store) limits() (time.Duration, int) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	return s.idx.window, s.idx.max
}

// Found takes a mark read from a chunk a buffer recovered (or from the
// record): the ids of a batch are remembered once every frame of it was
// found and its time is within the window. m is not kept.
func (s *Store) Found(m *Mark) {
	now := s.now()
	window, max := s.limits()
	at := time.UnixMilli(m.At)
	if at.After(now) {
		at = now // a clock set back: counts from now
	}
	if now.Sub(at) >= window {
		return
	}
	if m.Parts == 0 || m.Parts == 1 && m.Frames == 1 {
		s.accept(m.IDs, at)
		return
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	p := s.pending[m.Batch]
	if p == nil {
		if len(s.pending) >= max {
			s.prunePendingLocked(now, window)
		}
		p = &pendingBatch{at: at}
		for _, id := range m.IDs {
			p.ids = append(p.ids, key(id))
		}
		s.pending[m.Batch] = p
	}
	p.add(m)
	if p.complete() {
		delete(s.pending, m.Batch)
		s.m.recovered.Add(float64(len(p.ids)))
		s.idx.mu.Lock()
		for _, k := range p.ids {
			s.idx.addLocked(k, p.at)
		}
		s.idx.mu.Unlock()
	}
}

// prunePendingLocked forgets incomplete batches older than the window, and
// half of the rest when that is not enough.
func (s *Store) prunePendingLocked(now time.Time, window time.Duration) {
	for b, p := range s.pending {
		if now.Sub(p.at) >= window {
			delete(s.pending, b)
		}
	}
	n := len(s.pending) / 2
	for b := range s.pending {
		if n <= 0 {
			break
		}
		delete(s.pending, b)
		n--
	}
}

func (s *Store) accept(ids [][]byte, at time.Time) {
	s.m.recovered.Add(float64(len(ids)))
	s.idx.mu.Lock()
	for _, id := range ids {
		s.idx.addLocked(key(id), at)
	}
	s.idx.mu.Unlock()
}

// Keep is called before a chunk with marks leaves its buffer folder
// (delivered and removed, or dead-lettered): marks calls fn for every mark
// in the chunk (m valid only during the call); Keep appends those within
// the window to the record and returns once they are durable. Without a
// record it does nothing. An error means the marks may be lost with a
// crash: a resend after a restart may then be stored again.
func (s *Store) Keep(marks func(fn func(m *Mark)) error) error {
	if !s.persistent {
		return nil
	}
	now := s.now()
	window, max := s.limits()
	// Read the chunk outside the lock: other buffers' deliveries go on.
	var buf []byte
	n := 0
	err := marks(func(m *Mark) {
		if !expired(m.At, now, window) {
			buf = appendEntry(buf, m)
			n++
		}
	})
	s.rmu.Lock()
	defer s.rmu.Unlock()
	r := s.rec
	if r == nil {
		return nil // closed
	}
	if werr := r.write(buf); werr != nil {
		s.m.recordFailures.Inc()
		return werr
	}
	s.m.kept.Add(float64(n))
	if err != nil {
		s.m.recordFailures.Inc()
		return fmt.Errorf("read the marks of a chunk: %w", err)
	}
	if r.size >= r.compactAt {
		before := r.size
		if cerr := r.compact(func(ms []Mark) []Mark { return keepWindow(ms, now, window, max) }); cerr != nil {
			s.m.recordFailures.Inc()
			s.log.Warn("dedup record: compaction failed; the record grows until the next one", "err", cerr)
			r.compactAt = 2 * r.size
		} else {
			s.log.Debug("dedup record compacted", "bytes_before", before, "bytes_after", r.size)
		}
	}
	return nil
}

// Close releases the record and its folder lock, and the metrics.
func (s *Store) Close() error {
	s.rmu.Lock()
	if s.rec != nil {
		s.rec.close()
		s.rec = nil
	}
	s.rmu.Unlock()
	s.m.unregister()
	return nil
}
