package buffer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/fsutil"
	"github.com/marutalog/maruta/internal/lifecycle"
)

// Options configure a Buffer.
type Options struct {
	// Name is the output name: metrics label, log attribute, chunk header.
	Name string
	// Config is the output's buffer section with defaults applied;
	// Config.Path is this output's buffer folder.
	Config config.Buffer
	// Sink receives sealed chunks.
	Sink delivery.Sink
	// Node is the node name, written into chunk headers.
	Node string
	// ResolvePath resolves the output path template's tag placeholders for a
	// tag. nil means every chunk has the path "". The result is part of the
	// chunk key and of ChunkInfo.Path (after ${<chunk key>} placeholders are
	// replaced too).
	ResolvePath func(tag string) string
	// DeadLetterDir is where dead chunks go. Default <Config.Path>/deadletter.
	DeadLetterDir string
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// SealSize, when set and positive, seals chunks at min(chunk_limit_size,
	// SealSize()) bytes: the sink's estimate of the chunk size that makes
	// an object of the output's target_file_size. Called on every append;
	// it must be cheap.
	SealSize func() int64
	// RescanInterval is how often a running buffer looks for chunks put into
	// its folder by Requeue. Default 2s.
	RescanInterval time.Duration
	// Dedup receives the dedup marks of the chunks (FORMAT.md, "Dedup
	// marks"): those found by recovery, and those of chunks about to leave
	// the folder. nil: marks are written with the events all the same, and
	// never read back.
	Dedup DedupKeeper
}

// DedupKeeper is the Forward sources' dedup index as a buffer sees it
// (internal/dedup.Store implements it). Its methods are called from any
// goroutine; m and the marks are valid only during the call.
type DedupKeeper interface {
	// Found is called for every mark in the good part of each chunk the
	// buffer recovers (at start, and chunks requeued later).
	Found(m *dedup.Mark)
	// Keep is called before a chunk with marks is removed after delivery
	// or moved to the dead-letter folder; marks calls fn for each of its
	// marks. Keep returns once those it keeps are durable.
	Keep(marks func(fn func(m *dedup.Mark)) error) error
}

// Errors Consume returns. Both mean "not accepted": the caller does not ack.
var (
	// ErrFull is returned with overflow_action throw when the buffer is at
	// total_limit_size.
	ErrFull = errors.New("buffer is full")
	// ErrClosed is returned once Drain started or Run returned.
	ErrClosed = errors.New("buffer is closed")
	// errUnnumbered: a batch with a dedup mark but no delivery number (see
	// event.Batch): the router did not count this output as buffered,
	// which happens only while a reload swaps an output's type.
	errUnnumbered = errors.New("batch with a dedup mark has no delivery number (the pipeline is being reloaded; retry)")
)

// Buffer is one output's disk buffer. See the package doc for the lifecycle.
// All methods are safe for concurrent use.
type Buffer struct {
	name      string
	cfg       config.Buffer
	dir       string
	deadDir   string
	quarDir   string
	sink      delivery.Sink
	node      string
	resolve   func(string) string
	log       *slog.Logger
	now       func() time.Time
	rescan    time.Duration
	mode      config.FsyncMode
	overflow  config.OverflowAction
	timekeyNs int64
	chunkMax  int64
	sealSize  func() int64
	frameMax  int
	limit     int64
	commit    *committer
	m         *metrics
	lockFile  *os.File
	dedup     DedupKeeper

	mu          sync.Mutex
	open        map[string]*chunk // by chunk key
	chunks      map[string]*chunk // every chunk this buffer owns, by id
	queue       chunkHeap         // sealed chunks by (notBefore, id)
	total       int64             // bytes on disk, plus reservations
	queuedBytes int64             // bytes of queued and in-flight chunks
	inflight    int
	sealing     int // chunks being sealed
	blocked     int // Consume calls waiting for space
	changed     chan struct{}
	draining    bool
	closed      bool
	running     bool
	stopRun     context.CancelFunc // ends Run (set while running)
	lastErr     string
	lastErrTime time.Time
	lastSuccess time.Time
	deadCount   int64
	dropCount   int64
	quarCount   int64
	cutBytes    int64
	lastThrow   time.Time
	throwsSince int64

	kick chan struct{} // wakes the sealer when a chunk opens
}

var _ lifecycle.Component = (*Buffer)(nil)

// New builds a Buffer for opts: it creates the folders, locks the buffer
// folder against a second process, and recovers every chunk in it (torn
// tails cut, unreadable files quarantined, chunks left open sealed and
// queued). It never fails because of a bad chunk; it fails when the folder
// cannot be used or the config is unusable. It starts no goroutine.
func New(opts Options) (*Buffer, error) {
	cfg := opts.Config
	if opts.Name == "" {
		return nil, errors.New("create buffer: no output name")
	}
	if cfg.Path == "" {
		return nil, fmt.Errorf("create buffer %s: no path", opts.Name)
	}
	if opts.Sink == nil {
		return nil, fmt.Errorf("create buffer %s: no sink", opts.Name)
	}
	b := &Buffer{
		name:     opts.Name,
		cfg:      cfg,
		dir:      cfg.Path,
		deadDir:  opts.DeadLetterDir,
		sink:     opts.Sink,
		node:     opts.Node,
		resolve:  opts.ResolvePath,
		log:      opts.Logger,
		now:      opts.Now,
		rescan:   opts.RescanInterval,
		limit:    int64(cfg.TotalLimitSize),
		chunkMax: int64(cfg.ChunkLimitSize),
		sealSize: opts.SealSize,
		dedup:    opts.Dedup,
		open:     map[string]*chunk{},
		chunks:   map[string]*chunk{},
		changed:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
	}
	if b.deadDir == "" {
		b.deadDir = filepath.Join(b.dir, "deadletter")
	}
	b.quarDir = filepath.Join(b.dir, "quarantine")
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("component", "buffer", "output", b.name)
	if b.now == nil {
		b.now = time.Now
	}
	if b.rescan <= 0 {
		b.rescan = 2 * time.Second
	}
	// The modes come validated and defaulted from the config package;
	// a caller that builds options itself gets its mistakes named here.
	b.mode, b.overflow = cfg.Fsync, cfg.OverflowAction
	switch b.mode {
	case config.FsyncAlways, config.FsyncOff:
	case config.FsyncInterval:
		if cfg.FsyncInterval <= 0 {
			return nil, fmt.Errorf("create buffer %s: fsync interval needs fsync_interval > 0", b.name)
		}
	default:
		return nil, fmt.Errorf("create buffer %s: unknown fsync mode %q", b.name, cfg.Fsync)
	}
	switch b.overflow {
	case config.OverflowBlock, config.OverflowDropOldest, config.OverflowThrow:
	default:
		return nil, fmt.Errorf("create buffer %s: unknown overflow_action %q", b.name, cfg.OverflowAction)
	}
	if b.chunkMax <= 0 || b.limit <= 0 {
		return nil, fmt.Errorf("create buffer %s: chunk_limit_size and total_limit_size must be set", b.name)
	}
	if tk := cfg.Timekey.D(); tk > 0 {
		if tk%time.Second != 0 {
			return nil, fmt.Errorf("create buffer %s: timekey %s is not a whole number of seconds", b.name, tk)
		}
		b.timekeyNs = int64(tk)
	}
	b.frameMax = int(min(frameCap, max(b.chunkMax-512, 256)))
	if cfg.FlushThreadCount < 1 {
		b.cfg.FlushThreadCount = 1
	}
	if cfg.MaxOpenChunks < 1 {
		b.cfg.MaxOpenChunks = 1
	}

	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"output": b.name}, reg), b)
	if err != nil {
		return nil, fmt.Errorf("create buffer %s: %w", b.name, err)
	}
	b.m = m
	b.commit = newCommitter(func(d time.Duration) { m.fsync.Observe(d.Seconds()) }, b.commitFailed)

	if err := b.mkdirAll(b.dir); err != nil {
		m.unregister()
		return nil, fmt.Errorf("create buffer folder: %w", err)
	}
	if b.lockFile, err = fsutil.LockDir(b.dir, "buffer folder"); err != nil {
		m.unregister()
		return nil, err
	}
	b.recoverAll()
	return b, nil
}

// Consume appends every event of batch to its chunk(s) and returns once they
// are durable as the fsync mode promises (always: covered by an fsync;
// interval, off: written to the file). With fsync always and batch.Commit
// set, it returns once the events are appended and adds their writes to
// batch.Commit instead (see event.Batch): the group commit that makes them
// durable starts without waiting for anyone (FORMAT.md, "Write path and
// durability"). It implements event.Consumer: it keeps no reference to
// batch. When the buffer is full it blocks until there is room or ctx is
// done (overflow_action block), drops the oldest queued chunk
// (drop_oldest_chunk) or returns ErrFull (throw). total_limit_size bounds
// the frames; the header of a chunk opened at the limit (a few hundred bytes)
// and, with fsync always, the zero-filled preallocation of open chunks (up
// to 1 MiB each) come on top. A non-nil error means the
// batch must not be acknowledged; some of its events may still be delivered
// (at least once).
func (b *Buffer) Consume(ctx context.Context, batch *event.Batch) error {
	if len(batch.Events) == 0 {
		return nil
	}
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	// A marked batch: every frame carries the mark with this delivery's
	// number and its own (FORMAT.md, "Dedup marks"); all of one size.
	var mark *dedup.Mark
	markLen := 0
	if batch.Dedup != nil {
		if batch.Delivery < 1 || batch.Delivery > batch.Deliveries {
			b.m.rejected.WithLabelValues("unnumbered").Add(float64(len(batch.Events)))
			return fmt.Errorf("append to buffer %s: %w", b.name, errUnnumbered)
		}
		sc.mark = *batch.Dedup
		mark = &sc.mark
		mark.Part, mark.Parts = batch.Delivery, batch.Deliveries
		sc.buf = dedup.AppendMark(sc.buf[:0], mark)
		markLen = len(sc.buf)
	}
	path := ""
	if b.resolve != nil {
		path = b.resolve(batch.Tag)
	}
	b.plan(sc, batch, path, markLen)
	if err := b.reserve(ctx, sc.need, len(batch.Events)); err != nil {
		return err
	}
	frames := 0
	for gi := range sc.groups {
		frames += len(sc.groups[gi].frames)
	}
	written := int64(0)
	var first, last uint64
	var err error
	k := 0
	for gi := range sc.groups {
		g := &sc.groups[gi]
		for _, fr := range g.frames {
			if k++; mark != nil {
				mark.Frame, mark.Frames = k, frames
			}
			sc.buf, _ = appendFrame(sc.buf[:0], batch.Tag, batch.Events, g.idx[fr.from:fr.to], mark)
			var seq uint64
			seq, err = b.appendFrame(ctx, g, batch.Tag, sc.buf, fr.to-fr.from, fr.minT, markLen)
			if err != nil {
				break
			}
			written += int64(len(sc.buf))
			if first == 0 {
				first = seq
			}
			last = max(last, seq)
		}
		if err != nil {
			break
		}
	}
	if unused := sc.need - written; unused != 0 {
		b.mu.Lock()
		b.total -= unused
		b.notifyLocked()
		b.mu.Unlock()
	}
	if err != nil {
		if last > 0 {
			b.commit.kick() // what was appended still reaches the disk
		}
		if !errors.Is(err, ErrClosed) {
			b.noteError(err)
		}
		return err
	}
	if b.mode == config.FsyncAlways && last > 0 {
		if batch.Commit != nil {
			batch.Commit.Add(b.commit, first, last)
			b.commit.kick()
		} else if err := b.commit.wait(ctx, last); err != nil {
			if ctx.Err() == nil {
				b.noteError(err)
			}
			return fmt.Errorf("sync buffer %s: %w", b.name, err)
		}
	}
	b.m.appends.Inc()
	b.m.appendEvents.Add(float64(len(batch.Events)))
	b.m.appendBytes.Add(float64(written))
	return nil
}

// scratch holds one Consume call's working memory.
type scratch struct {
	groups []group
	buf    []byte
	need   int64
	vals   []string
	mark   dedup.Mark // the batch's mark with this delivery's numbers
}

// group is the events of one batch that share a chunk key.
type group struct {
	slice  int64
	vals   []string // chunk_keys values
	key    []byte   // key in Buffer.open
	path   string
	idx    []int32
	frames []frameSpan
}

type frameSpan struct {
	from, to int // indexes into group.idx
	minT     event.Time
}

var scratchPool = sync.Pool{New: func() any { return &scratch{} }}

func (sc *scratch) release() {
	for i := range sc.groups {
		g := &sc.groups[i]
		g.idx = g.idx[:0]
		g.frames = g.frames[:0]
		g.vals = g.vals[:0]
	}
	sc.groups = sc.groups[:0]
	sc.mark = dedup.Mark{}
	if cap(sc.buf) > 4<<20 {
		sc.buf = nil
	}
	scratchPool.Put(sc)
}

// plan groups the batch's events by chunk key and splits each group into
// frames of at most frameMax payload bytes, a dedup mark of markLen bytes
// included; it sets sc.need to the bytes the frames take on disk.
func (b *Buffer) plan(sc *scratch, batch *event.Batch, path string, markLen int) {
	keys := b.cfg.ChunkKeys
	sc.need = 0
	for i := range batch.Events {
		e := &batch.Events[i]
		s := sliceOf(e.Time, b.timekeyNs)
		sc.vals = sc.vals[:0]
		for _, k := range keys {
			sc.vals = append(sc.vals, keyValue(e.Record, k))
		}
		gi := -1
		for j := range sc.groups {
			if sc.groups[j].slice == s && slices.Equal(sc.groups[j].vals, sc.vals) {
				gi = j
				break
			}
		}
		if gi < 0 {
			if len(sc.groups) < cap(sc.groups) {
				sc.groups = sc.groups[:len(sc.groups)+1]
			} else {
				sc.groups = append(sc.groups, group{})
			}
			gi = len(sc.groups) - 1
			g := &sc.groups[gi]
			g.slice = s
			g.vals = append(g.vals[:0], sc.vals...)
			g.path = path
			if len(keys) > 0 {
				g.path = resolveKeys(path, keys, g.vals)
			}
			g.key = appendChunkKey(g.key[:0], path, s, g.vals)
		}
		g := &sc.groups[gi]
		g.idx = append(g.idx, int32(i))
	}
	limit := b.frameMax - markLen
	for gi := range sc.groups {
		g := &sc.groups[gi]
		from, size := 0, 0
		minT := event.Time(math.MaxInt64)
		for j, i := range g.idx {
			es := entrySize(&batch.Events[i])
			if j > from && size+es > limit {
				n := markLen + payloadHeadSize(batch.Tag, j-from) + size
				g.frames = append(g.frames, frameSpan{from, j, minT})
				sc.need += int64(frameHeadSize + n)
				from, size, minT = j, 0, event.Time(math.MaxInt64)
			}
			size += es
			minT = min(minT, batch.Events[i].Time)
		}
		n := markLen + payloadHeadSize(batch.Tag, len(g.idx)-from) + size
		g.frames = append(g.frames, frameSpan{from, len(g.idx), minT})
		sc.need += int64(frameHeadSize + n)
	}
}

// appendChunkKey appends the open-chunk map key of a group to dst.
func appendChunkKey(dst []byte, path string, slice int64, vals []string) []byte {
	dst = append(dst, path...)
	dst = append(dst, 0)
	dst = strconv.AppendInt(dst, slice, 10)
	for _, v := range vals {
		dst = append(dst, 0)
		dst = append(dst, v...)
	}
	return dst
}

// appendFrame writes one frame (n events, a dedup mark of markLen bytes)
// to the open chunk of g's key, opening or rotating chunks as needed, and
// returns the write's commit number (0 when the fsync mode does not track
// writes).
func (b *Buffer) appendFrame(ctx context.Context, g *group, tag string, frame []byte, n int, minT event.Time, markLen int) (uint64, error) {
	for {
		c, err := b.openChunk(ctx, g, tag)
		if err != nil {
			return 0, err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			continue
		}
		if c.failed.Load() || (c.frames > 0 && c.size.Load()+int64(len(frame)) > b.sealAt()) {
			c.mu.Unlock()
			b.retire(c)
			continue
		}
		err = c.writeLocked(frame, n, minT, markLen)
		c.mu.Unlock()
		if err != nil {
			b.retire(c)
			return 0, err
		}
		if b.mode == config.FsyncOff {
			return 0, nil
		}
		return b.commit.register(c), nil
	}
}

// openChunk returns the open chunk for g's key, creating it (and sealing the
// oldest open chunk when max_open_chunks is reached) if there is none.
func (b *Buffer) openChunk(ctx context.Context, g *group, tag string) (*chunk, error) {
	b.mu.Lock()
	if err := b.acceptingLocked(); err != nil {
		b.mu.Unlock()
		return nil, err
	}
	c := b.open[string(g.key)]
	var victim *chunk
	if c == nil {
		if len(b.open) >= b.cfg.MaxOpenChunks {
			for _, o := range b.open {
				if victim == nil || o.id < victim.id {
					victim = o
				}
			}
			b.takeOpenLocked(victim)
		}
		now := b.now()
		h := &header{
			Version: formatVersion,
			ID:      newID(now),
			Output:  b.name,
			Node:    b.node,
			Path:    g.path,
			Tag:     tag,
			Timekey: time.Duration(b.timekeyNs),
			Slice:   g.slice,
			Created: now.UTC().Truncate(time.Microsecond),
		}
		if len(b.cfg.ChunkKeys) > 0 {
			h.Keys = make(map[string]string, len(g.vals))
			for i, k := range b.cfg.ChunkKeys {
				h.Keys[k] = g.vals[i]
			}
		}
		c = newChunk(b.dir, h)
		c.key = string(g.key)
		c.coalesce = b.mode == config.FsyncAlways
		c.deadline = now.Add(b.cfg.FlushInterval.D())
		if b.timekeyNs > 0 {
			// A chunk of a slice still open (or within timekey_wait) seals
			// when the slice closes. Events arriving after that (late, or a
			// backlog an agent replays after an outage) collect for
			// flush_interval like any chunk, instead of one tiny chunk (and
			// one tiny object) per append.
			end := time.Unix(g.slice, 0).Add(time.Duration(b.timekeyNs) + b.cfg.TimekeyWait.D())
			if end.After(now) && end.Before(c.deadline) {
				c.deadline = end
			}
		}
		b.open[c.key] = c
		b.chunks[c.id] = c
		b.mu.Unlock()
		if victim != nil {
			b.seal(victim)
		}
		err := c.create(b.mode != config.FsyncOff)
		b.mu.Lock()
		if err != nil {
			c.createErr = err
			if b.open[c.key] == c {
				delete(b.open, c.key)
			}
			delete(b.chunks, c.id)
			c.state = stateGone
		} else {
			b.total += c.dataOff
		}
		b.mu.Unlock()
		close(c.ready)
		if err != nil {
			b.notify()
			return nil, err
		}
		select {
		case b.kick <- struct{}{}:
		default:
		}
		return c, nil
	}
	b.mu.Unlock()
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.createErr != nil {
		return nil, c.createErr
	}
	return c, nil
}

// sealAt is the size at which a chunk takes no more frames.
func (b *Buffer) sealAt() int64 {
	if b.sealSize != nil {
		if s := b.sealSize(); s > 0 && s < b.chunkMax {
			return s
		}
	}
	return b.chunkMax
}

func (b *Buffer) acceptingLocked() error {
	if b.closed || b.draining {
		return fmt.Errorf("append to buffer %s: %w", b.name, ErrClosed)
	}
	return nil
}

// takeOpenLocked moves c out of the open set so that exactly one caller
// seals it. It reports whether the caller now owns the sealing.
func (b *Buffer) takeOpenLocked(c *chunk) bool {
	if c == nil || c.state != stateOpen {
		return false
	}
	if b.open[c.key] == c {
		delete(b.open, c.key)
	}
	c.state = stateSealing
	b.sealing++
	return true
}

// retire seals c unless someone else already does.
func (b *Buffer) retire(c *chunk) {
	b.mu.Lock()
	mine := b.takeOpenLocked(c)
	b.mu.Unlock()
	if mine {
		b.seal(c)
	}
}

// seal closes c's file, renames it to queued and queues it. The caller owns
// the sealing (takeOpenLocked returned true).
func (b *Buffer) seal(c *chunk) {
	<-c.ready
	defer func() {
		b.mu.Lock()
		b.sealing--
		b.notifyLocked()
		b.mu.Unlock()
	}()
	if c.createErr != nil {
		return
	}
	durable := b.mode != config.FsyncOff
	if err := c.closeFile(durable); err != nil {
		b.log.Error("sealing chunk: final sync failed; the chunk is queued as is and checked when read", "chunk", c.id, "err", err)
		b.noteError(err)
	}
	c.mu.Lock()
	empty := c.frames == 0
	c.mu.Unlock()
	if empty {
		if err := os.Remove(filepath.Join(b.dir, c.name)); err != nil {
			b.log.Warn("removing empty chunk", "chunk", c.id, "err", err)
		}
		b.mu.Lock()
		b.total -= c.size.Load() + c.lost.Load()
		delete(b.chunks, c.id)
		c.state = stateGone
		b.mu.Unlock()
		return
	}
	from := filepath.Join(b.dir, c.name)
	name := c.id + queuedSuffix
	if err := os.Rename(from, filepath.Join(b.dir, name)); err != nil {
		// The file stays open-named: delivered from there, or recovered
		// (sealed) at the next start.
		b.log.Error("sealing chunk: rename failed", "chunk", c.id, "err", err)
		name = c.name
	} else if durable {
		if err := syncDir(b.dir); err != nil {
			b.log.Warn("sealing chunk: folder sync failed", "chunk", c.id, "err", err)
		}
	}
	b.mu.Lock()
	c.name = name
	b.enqueueLocked(c)
	b.mu.Unlock()
}

// enqueueLocked puts a sealed chunk into the delivery queue.
func (b *Buffer) enqueueLocked(c *chunk) {
	c.state = stateQueued
	b.queuedBytes += c.size.Load()
	heap.Push(&b.queue, c)
	b.notifyLocked()
}

// reserve accounts need bytes against total_limit_size, applying the
// overflow action when they do not fit.
func (b *Buffer) reserve(ctx context.Context, need int64, events int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if err := b.acceptingLocked(); err != nil {
			b.m.rejected.WithLabelValues("closed").Add(float64(events))
			return err
		}
		if b.total+need <= b.limit {
			b.total += need
			return nil
		}
		if need > b.limit {
			b.m.rejected.WithLabelValues("too_large").Add(float64(events))
			return fmt.Errorf("append to buffer %s: batch of %d bytes exceeds total_limit_size %d", b.name, need, b.limit)
		}
		switch b.overflow {
		case config.OverflowThrow:
			b.m.rejected.WithLabelValues("buffer_full").Add(float64(events))
			b.throwsSince++
			if now := b.now(); now.Sub(b.lastThrow) >= 10*time.Second {
				b.log.Warn("buffer full (overflow_action throw): appends rejected, clients will resend",
					"rejected_appends", b.throwsSince, "total_bytes", b.total, "limit", b.limit)
				b.lastThrow, b.throwsSince = now, 0
			}
			return fmt.Errorf("append to buffer %s: %w", b.name, ErrFull)
		case config.OverflowDropOldest:
			if v := b.oldestQueuedLocked(); v != nil {
				b.dropLocked(v, "overflow_drop_oldest_chunk")
				continue
			}
		}
		// Wait for room. If delivering every sealed chunk could not make
		// room, seal the oldest open chunk so that it can be delivered (or
		// dropped) instead of waiting for its timer.
		if b.queuedBytes < need && b.sealing == 0 {
			var victim *chunk
			for _, o := range b.open {
				if o.size.Load() > o.dataOff && (victim == nil || o.id < victim.id) {
					victim = o
				}
			}
			if victim != nil && b.takeOpenLocked(victim) {
				b.mu.Unlock()
				b.seal(victim)
				b.mu.Lock()
				continue
			}
		}
		ch := b.changed
		b.blocked++
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		b.mu.Lock()
		b.blocked--
		if ctx.Err() != nil {
			b.m.rejected.WithLabelValues("timeout").Add(float64(events))
			return fmt.Errorf("append to buffer %s: waiting for room: %w", b.name, ctx.Err())
		}
	}
}

// oldestQueuedLocked returns the queued (not in-flight) chunk with the
// smallest id.
func (b *Buffer) oldestQueuedLocked() *chunk {
	var v *chunk
	for _, c := range b.queue {
		if v == nil || c.id < v.id {
			v = c
		}
	}
	return v
}

// dropLocked deletes a queued chunk because of reason (a drop: counted and
// logged).
func (b *Buffer) dropLocked(c *chunk, reason string) {
	heap.Remove(&b.queue, c.hidx)
	size, events := c.size.Load(), c.events.Load()
	if err := os.Remove(filepath.Join(b.dir, c.name)); err != nil && !os.IsNotExist(err) {
		b.log.Error("dropping chunk: remove failed", "chunk", c.id, "err", err)
	}
	b.forgetLocked(c)
	b.dropCount += events
	b.m.dropEvents.WithLabelValues(reason).Add(float64(events))
	b.m.dropBytes.WithLabelValues(reason).Add(float64(size))
	b.m.dropChunks.WithLabelValues(reason).Inc()
	b.log.Warn("dropped chunk", "reason", reason, "chunk", c.id, "events", events, "bytes", size, "tag", c.hdr.Tag)
}

// forgetLocked removes a queued or in-flight chunk whose file is gone.
func (b *Buffer) forgetLocked(c *chunk) {
	size := c.size.Load()
	b.total -= size + c.lost.Load()
	b.queuedBytes -= size
	delete(b.chunks, c.id)
	c.state = stateGone
	b.notifyLocked()
}

func (b *Buffer) notify() {
	b.mu.Lock()
	b.notifyLocked()
	b.mu.Unlock()
}

// notifyLocked wakes everyone waiting for a change of state.
func (b *Buffer) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// commitFailed reports a group-commit round whose write or fdatasync
// failed. Its appends are not durable: requests that waited for the round
// are not acknowledged (their clients resend); appends nobody waited for
// (Forward requests without a chunk option) are lost unless the data
// reached the disk anyway, and this log line and counter are all that tells.
func (b *Buffer) commitFailed(err error, writes uint64) {
	b.noteError(err)
	b.m.commitFailures.Inc()
	b.log.Error("group commit failed: its appends are not durable; acks are withheld, appends without ack may be lost",
		"appends", writes, "err", err)
}

func (b *Buffer) noteError(err error) {
	b.mu.Lock()
	b.lastErr = err.Error()
	b.lastErrTime = b.now()
	b.mu.Unlock()
}

// Status is a snapshot of a buffer, for /api/status and readiness.
type Status struct {
	Output          string    `json:"output"`
	OpenChunks      int       `json:"open_chunks"`
	OpenBytes       int64     `json:"open_bytes"`
	QueuedChunks    int       `json:"queued_chunks"` // sealed, waiting for delivery (incl. in flight)
	QueuedBytes     int64     `json:"queued_bytes"`
	InFlightChunks  int       `json:"in_flight_chunks"`
	RetryingChunks  int       `json:"retrying_chunks"` // queued chunks that failed at least once
	TotalBytes      int64     `json:"total_bytes"`
	TotalLimitBytes int64     `json:"total_limit_bytes"`
	BlockedAppends  int       `json:"blocked_appends"`
	OldestEvent     time.Time `json:"oldest_event,omitzero"` // oldest event not yet delivered
	LastError       string    `json:"last_error,omitempty"`
	LastErrorTime   time.Time `json:"last_error_time,omitzero"`
	LastSuccess     time.Time `json:"last_success,omitzero"`
	DeadLettered    int64     `json:"dead_lettered"` // chunks, since start
	DroppedEvents   int64     `json:"dropped_events"`
	Quarantined     int64     `json:"quarantined"`
	RecoveryCut     int64     `json:"recovery_cut_bytes"`
	Draining        bool      `json:"draining"`
}

// Status returns a snapshot of the buffer's state.
func (b *Buffer) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{
		Output:          b.name,
		TotalBytes:      b.total,
		TotalLimitBytes: b.limit,
		BlockedAppends:  b.blocked,
		LastError:       b.lastErr,
		LastErrorTime:   b.lastErrTime,
		LastSuccess:     b.lastSuccess,
		DeadLettered:    b.deadCount,
		DroppedEvents:   b.dropCount,
		Quarantined:     b.quarCount,
		RecoveryCut:     b.cutBytes,
		Draining:        b.draining,
		InFlightChunks:  b.inflight,
	}
	oldest := int64(math.MaxInt64)
	for _, c := range b.chunks {
		switch c.state {
		case stateOpen, stateSealing:
			s.OpenChunks++
			s.OpenBytes += c.size.Load()
		case stateQueued, stateInflight:
			s.QueuedChunks++
			s.QueuedBytes += c.size.Load()
			if c.attempts > 0 {
				s.RetryingChunks++
			}
		}
		oldest = min(oldest, c.minTime.Load())
	}
	if oldest != math.MaxInt64 {
		s.OldestEvent = event.Time(oldest).Std()
	}
	return s
}

// Close seals open chunks (they stay on disk, queued for the next start)
// and releases the folder lock. While Run runs, Close ends it as cancelling
// its context does, and Run does this as it returns; otherwise Close does it
// at once. It is safe to call more than once, before or after Run.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.running {
		stop := b.stopRun
		b.mu.Unlock()
		stop()
		return nil
	}
	b.mu.Unlock()
	b.shutdown()
	return nil
}

// shutdown stops appends, seals every open chunk and releases the lock.
func (b *Buffer) shutdown() {
	if !b.stopAppends(true) {
		return
	}
	if b.lockFile != nil {
		b.lockFile.Close()
	}
	b.m.unregister()
}

// stopAppends makes Consume fail with ErrClosed from now on and seals every
// chunk still open: for Drain (close false: delivery goes on) and for
// shutdown (close true: the buffer is closed). It reports false, and does
// nothing, when the buffer was closed already.
func (b *Buffer) stopAppends(close bool) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	if close {
		b.closed = true
	} else {
		b.draining = true
	}
	var open []*chunk
	for _, c := range b.open {
		if b.takeOpenLocked(c) {
			open = append(open, c)
		}
	}
	b.notifyLocked()
	b.mu.Unlock()
	for _, c := range open {
		b.seal(c)
	}
	return true
}

// chunkHeap orders sealed chunks by (notBefore, id): fresh chunks in
// creation order, then chunks waiting for a retry.
type chunkHeap []*chunk

func (h chunkHeap) Len() int { return len(h) }
func (h chunkHeap) Less(i, j int) bool {
	if !h[i].notBefore.Equal(h[j].notBefore) {
		return h[i].notBefore.Before(h[j].notBefore)
	}
	return h[i].id < h[j].id
}
func (h chunkHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *chunkHeap) Push(x any) {
	c := x.(*chunk)
	c.hidx = len(*h)
	*h = append(*h, c)
}
func (h *chunkHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.hidx = -1
	return c
}
