package forward

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// Decompression is where a small request can ask for a lot of memory: a
// 65 KB zstd frame or a 2 MB gzip stream inflates to gigabytes. The decoder
// therefore never holds a request's inflated bytes in one buffer that
// doubles (which costs 1.5 times the data, and more in garbage): it
// inflates into blocks and parses the entries of each block as it fills,
// carrying an entry cut at a block's end into the next block. A block no
// event points into is reused at once (a stream of invalid entries costs
// one block). Every block, the growth of the events slice and zstd's
// history count against a budget the connections of a server share; a
// request that would go past it waits for others to give bytes back, and is
// refused (decompress_budget: counted, the connection closed) if none do
// within budgetWait. A request alone is never refused by the budget: it is
// bounded by max_decompressed_size. When a spike of held bytes ends, the
// memory is given back to the operating system.
const (
	firstBlock    = 64 << 10 // the first block of a request (most fit)
	blockSize     = 1 << 20  // the blocks after it (more for a larger entry)
	budgetWait    = 5 * time.Second
	zstdMaxWindow = 8 << 20 // RFC 8878's recommended minimum; levels 1-19 stay within it
	eventSize     = 32      // bytes of one event.Event
	giveBackAbove = 32 << 20
	giveBackAfter = time.Second
)

// errBudget: the request needs more memory than the budget has, and none
// came free within budgetWait.
var errBudget = errors.New("decompression budget exhausted: other requests hold it")

// inflateBudget bounds the bytes decompression holds across connections
// and recycles their blocks. Safe for concurrent use.
type inflateBudget struct {
	limit int64
	wait  time.Duration
	after time.Duration   // from the end of a spike to giving memory back
	stop  <-chan struct{} // closed when the server stops: waits end

	mu       sync.Mutex
	used     int64
	peak     int64 // largest used since it was last 0
	waiters  int
	freed    chan struct{} // closed and replaced when bytes come back while waiters wait
	free     [][]byte      // idle blocks of blockSize
	giveBack *time.Timer   // pending return of memory to the OS
	returns  int           // times memory was given back (tests)
}

func newInflateBudget(limit int64, stop <-chan struct{}) *inflateBudget {
	return &inflateBudget{limit: limit, wait: budgetWait, after: giveBackAfter, stop: stop, freed: make(chan struct{})}
}

// unlimited is the budget of decoders that belong to no server (tests).
func unlimited() *inflateBudget { return newInflateBudget(math.MaxInt64, nil) }

// inUse returns the bytes held (a metric).
func (b *inflateBudget) inUse() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(b.used)
}

// acquire takes n bytes for a request that holds held already. It grants
// them when they fit, or when the request is the only holder; otherwise it
// waits for bytes to come back, and returns false when *waited (what the
// request waited in all) reaches b.wait.
func (b *inflateBudget) acquire(n, held int64, waited *time.Duration) bool {
	var deadline <-chan time.Time
	var since time.Time
	defer func() {
		if !since.IsZero() {
			*waited += time.Since(since)
		}
	}()
	for {
		b.mu.Lock()
		if b.used+n <= b.limit || b.used == held {
			b.used += n
			b.peak = max(b.peak, b.used)
			if b.giveBack != nil {
				b.giveBack.Stop()
				b.giveBack = nil
			}
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.waiters++
		b.mu.Unlock()
		if deadline == nil {
			left := b.wait - *waited
			if left <= 0 {
				b.unwait()
				return false
			}
			since = time.Now()
			t := time.NewTimer(left)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-freed:
			b.unwait()
		case <-deadline:
			b.unwait()
			return false
		case <-b.stop:
			b.unwait()
			return false
		}
	}
}

func (b *inflateBudget) unwait() {
	b.mu.Lock()
	b.waiters--
	b.mu.Unlock()
}

// release gives n bytes back. When nothing is held any more after a spike
// above giveBackAbove, the idle blocks are dropped and the memory returned
// to the OS a little later (unless a new spike starts first).
func (b *inflateBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.waiters > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
	if b.used == 0 && b.peak >= giveBackAbove && b.giveBack == nil {
		b.giveBack = time.AfterFunc(b.after, b.returnMemory)
	}
}

// returnMemory drops the idle blocks and gives the heap's free pages back
// to the OS: two collections (the first moves pooled buffers to the pools'
// victim caches, the second frees them), then a scavenge.
func (b *inflateBudget) returnMemory() {
	b.mu.Lock()
	if b.used != 0 || b.giveBack == nil {
		b.mu.Unlock()
		return
	}
	b.giveBack = nil
	b.free = nil
	b.peak = 0
	b.returns++
	b.mu.Unlock()
	runtime.GC()
	debug.FreeOSMemory()
}

// block returns an empty block of capacity at least n: a recycled one of
// blockSize, or a new one.
func (b *inflateBudget) block(n int) []byte {
	if n <= blockSize {
		b.mu.Lock()
		if k := len(b.free); k > 0 {
			p := b.free[k-1]
			b.free[k-1] = nil
			b.free = b.free[:k-1]
			b.mu.Unlock()
			return p[:0]
		}
		b.mu.Unlock()
		return make([]byte, 0, blockSize)
	}
	return make([]byte, 0, n)
}

// recycle keeps an idle block of blockSize for the next request (at most
// as many as the budget could hold).
func (b *inflateBudget) recycle(p []byte) {
	if cap(p) != blockSize {
		return
	}
	b.mu.Lock()
	if int64(len(b.free)+1)*blockSize <= b.limit {
		b.free = append(b.free, p[:0])
	}
	b.mu.Unlock()
}

// charge takes n bytes of the budget for the current request.
func (d *decoder) charge(n int64) *requestError {
	if n <= 0 {
		return nil
	}
	if !d.budget.acquire(n, d.held, &d.waited) {
		return fatal(reasonDecompressBudget, fmt.Errorf("%w (%d MiB held by this request, %d MiB asked)", errBudget, d.held>>20, n>>20))
	}
	d.held += n
	return nil
}

// dropBlocks lets the previous request's blocks go: its records are no
// longer in use.
func (d *decoder) dropBlocks() {
	for i, p := range d.blocks {
		d.budget.recycle(p)
		d.blocks[i] = nil
	}
	d.blocks = d.blocks[:0]
	d.budget.release(d.held)
	d.held, d.histHeld, d.waited = 0, 0, 0
	d.arena = d.arena[:0]
}

// reader returns the decompressor for kind, reading payload.
func (d *decoder) reader(payload []byte, kind string) (io.Reader, error) {
	d.br.Reset(payload)
	switch kind {
	case "gzip":
		if d.gz == nil {
			gz, err := gzip.NewReader(&d.br)
			if err != nil {
				return nil, err
			}
			d.gz = gz
		} else if err := d.gz.Reset(&d.br); err != nil {
			return nil, err
		}
		d.gz.Multistream(true)
		return d.gz, nil
	default: // zstd
		if d.zd == nil {
			zd, err := zstd.NewReader(&d.br,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(uint64(d.maxDecompressed)+1),
				zstd.WithDecoderMaxWindow(zstdMaxWindow))
			if err != nil {
				return nil, err
			}
			d.zd = zd
		} else if err := d.zd.Reset(&d.br); err != nil {
			return nil, err
		}
		return d.zd, nil
	}
}

// inflate decompresses a gzip (any number of members) or zstd (any number
// of frames) PackedForward payload into blocks, then decodes its entries
// into r (see the top of this file). Nothing is parsed before the whole
// payload is inflated, so a bomb costs decompression only. A payload that
// cannot be decoded whole is refused whole.
func (d *decoder) inflate(payload []byte, kind string, now event.Time, depth int, r *request) *requestError {
	rd, err := d.reader(payload, kind)
	if err != nil {
		return reject(reasonBadCompression, "decompress %s: %w", kind, err)
	}
	if d.first == nil {
		d.first = getBuf(firstBlock)
	}
	d.waited = 0
	if rerr := d.charge(int64(cap(d.first))); rerr != nil {
		return rerr
	}
	d.zdUsed = d.zdUsed || kind == "zstd"
	blk := d.first[:0]
	filled := d.filled[:0]
	total, limit := 0, d.maxDecompressed
	for {
		if len(blk) == cap(blk) {
			filled = append(filled, blk)
			if kind == "zstd" {
				// The decoder's history grows with what it inflated, up
				// to its window.
				if h := int64(min(total, zstdMaxWindow)); h > d.histHeld {
					if rerr := d.charge(h - d.histHeld); rerr != nil {
						return rerr
					}
					d.histHeld = h
				}
			}
			if rerr := d.charge(blockSize); rerr != nil {
				return rerr
			}
			blk = d.budget.block(blockSize)
			d.blocks = append(d.blocks, blk)
		}
		n, err := rd.Read(blk[len(blk):min(cap(blk), len(blk)+limit+1-total)])
		blk = blk[:len(blk)+n]
		total += n
		if total > limit {
			return fatal(reasonDecompressedSize, errDecompressedTooLarge)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return fatal(reasonDecompressedSize, fmt.Errorf("%w: %w", errDecompressedTooLarge, err))
			}
			return reject(reasonBadCompression, "decompress %s: %w", kind, err)
		}
	}
	filled = append(filled, blk)
	d.filled = filled
	d.inflated = total
	return d.entries(filled, now, depth, r, true)
}

// entries decodes the entries of the blocks bs into r. An entry cut at the
// end of a block is copied whole (join) first. With charge, the growth of
// the events slice counts against the budget.
func (d *decoder) entries(bs [][]byte, now event.Time, depth int, r *request, charge bool) *requestError {
	evCharged := cap(r.events)
	for i := 0; i < len(bs); i++ {
		p := bs[i]
		for len(p) > 0 {
			rest, err := d.entry(p, now, depth-1, r)
			if err == nil {
				p = rest
				continue
			}
			n := len(r.events)
			switch {
			case errors.Is(err, msgpack.ErrDepth):
				return fatal(reasonTooDeep, fmt.Errorf("packed entry %d: %w", n, errFrameTooDeep))
			case !errors.Is(err, msgpack.ErrShort):
				return reject(reasonBadEntries, "packed entry %d: %w", n, err)
			}
			e, j, off, rerr := d.join(p, bs, i, depth)
			if rerr != nil {
				return rerr
			}
			if rest, err := d.entry(e, now, depth-1, r); err != nil || len(rest) != 0 {
				return reject(reasonBadEntries, "packed entry %d: across blocks: %v", n, err)
			}
			i, p = j, bs[j][off:]
		}
		if grow := cap(r.events) - evCharged; charge && grow > 0 {
			if rerr := d.charge(int64(grow) * eventSize); rerr != nil {
				return rerr
			}
			evCharged = cap(r.events)
		}
	}
	return nil
}

// joinStep is how much of the next block join looks at a time.
const joinStep = 16 << 10

// join copies the entry that starts with tail (the end of bs[i]) and goes
// on in the blocks after it into d.arena, finding its end with a framer
// (each byte looked at once). It returns the entry, and the block and
// offset where the bytes after it begin. Records point into the arena until
// the next request; when it grows, earlier ones keep the old array.
func (d *decoder) join(tail []byte, bs [][]byte, i, depth int) ([]byte, int, int, *requestError) {
	if d.fr.stack == nil {
		d.fr = newFramer(d.maxDecompressed, depth)
	}
	d.fr.limit, d.fr.maxDepth = d.maxDecompressed, depth
	d.fr.reset()
	start := len(d.arena)
	d.arena = append(d.arena, tail...)
	for k := i + 1; k < len(bs); k++ {
		b := bs[k]
		for off := 0; off < len(b); {
			step := min(joinStep, len(b)-off)
			d.arena = append(d.arena, b[off:off+step]...)
			off += step
			l, err := d.fr.next(d.arena[start:])
			if err != nil {
				d.arena = d.arena[:start]
				if errors.Is(err, errFrameTooDeep) {
					return nil, 0, 0, fatal(reasonTooDeep, err)
				}
				return nil, 0, 0, reject(reasonBadEntries, "packed entry across blocks: %w", err)
			}
			if l > 0 {
				over := len(d.arena) - start - l
				d.arena = d.arena[:start+l]
				if rerr := d.charge(int64(l)); rerr != nil {
					return nil, 0, 0, rerr
				}
				return d.arena[start : start+l : start+l], k, off - over, nil
			}
		}
	}
	d.arena = d.arena[:start]
	return nil, 0, 0, reject(reasonBadEntries, "packed entry is cut short")
}
