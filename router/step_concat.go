package router

import (
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/loglimit"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/prometheus/client_golang/prometheus"
)

// dockerPartialSize is the size of every fragment of a split line but the
// last: Docker's log copier buffer.
const dockerPartialSize = 16 << 10

// concatStep reassembles the lines Docker's fluentd log driver splits at
// 16 KiB. Fragments are recognised in the forms Docker versions send:
//
//   - 19.03 and later: partial_message "true", partial_id, partial_ordinal
//     (1, 2, …) and partial_last ("true" on the final fragment). Fragments
//     are grouped by (tag, container_id, source, partial_id), ordered by
//     partial_ordinal, and the line ends when every fragment up to the one
//     marked last has arrived.
//   - 18.06–18.09: partial_message "true" on every fragment, the last one
//     included, and nothing else. Every fragment but the last is exactly
//     16 KiB, so a shorter one ends the line.
//   - before 18.06: partial_message "true" on every fragment but the last,
//     which arrives without it: a record without the flag ends a pending line
//     of its container and source.
//
// The assembled record is the first fragment's record with the key (log)
// holding the concatenated bytes (kept as bytes: invalid UTF-8 survives) and
// the partial_* keys removed; its time is the first fragment's. A line that
// stays unfinished for timeout (no fragment arrives), or when Drain runs, is
// passed on as it is. A line longer than max_size is passed on in parts of
// max_size bytes. When max_pending lines are held, the least recently
// extended one is passed on to make room. See the package documentation for
// what holding fragments in memory means for durability.
type concatStep struct {
	s          *stepRT
	key        string
	timeout    time.Duration
	maxSize    int
	maxPending int

	mu        sync.Mutex
	lines     map[lineKey]*pendingLine
	flagLines atomic.Int64 // lines in the flag-only forms (no partial_id)
	bytes     int

	log      *slog.Logger
	splitLog *loglimit.Limiter // lines over max_size

	pending      prometheus.Gauge
	pendingBytes prometheus.Gauge
	timedOut     prometheus.Counter
	now          func() time.Time
}

type lineKey struct {
	tag, container, source, id string
}

type pendingLine struct {
	key     lineKey
	time    event.Time
	rec     []byte // first fragment's record
	buf     []byte // bytes in order
	next    int    // next ordinal expected (19.03 form)
	ooo     map[int][]byte
	oooSize int
	last    int // ordinal of the last fragment, 0 while unknown
	updated time.Time
	parts   int // parts of max_size already passed on
}

func newConcatStep(c *config.ConcatPartialsStep, s *stepRT, log *slog.Logger) *concatStep {
	cs := &concatStep{
		s:          s,
		log:        log,
		key:        c.Key,
		timeout:    c.Timeout.D(),
		maxSize:    int(c.MaxSize),
		maxPending: c.MaxPending,
		lines:      map[lineKey]*pendingLine{},
		now:        time.Now,
	}
	cs.splitLog = loglimit.New(10 * time.Second)
	return cs
}

// partialMeta reads the Docker partial fields of a record.
type partialMeta struct {
	partial bool
	id      []byte
	ordinal int
	last    bool
}

func readPartialMeta(rec []byte) partialMeta {
	var m partialMeta
	v, ok, _ := msgpack.MapGet(rec, "partial_message", maxDepth)
	if !ok || !isTrue(v) {
		return m
	}
	m.partial = true
	if v, ok, _ := msgpack.MapGet(rec, "partial_id", maxDepth); ok {
		if b, _, _, err := msgpack.ReadBytes(v); err == nil && len(b) > 0 {
			m.id = b
		}
	}
	if m.id == nil {
		return m
	}
	if v, ok, _ := msgpack.MapGet(rec, "partial_ordinal", maxDepth); ok {
		switch msgpack.Peek(v) {
		case msgpack.Str, msgpack.Bin:
			b, _, _, _ := msgpack.ReadBytes(v)
			m.ordinal, _ = strconv.Atoi(string(b))
		case msgpack.Int:
			n, _, _ := msgpack.ReadInt(v)
			m.ordinal = int(n)
		}
	}
	if v, ok, _ := msgpack.MapGet(rec, "partial_last", maxDepth); ok {
		m.last = isTrue(v)
	}
	return m
}

func isTrue(v []byte) bool {
	switch msgpack.Peek(v) {
	case msgpack.Bool:
		b, _, _ := msgpack.ReadBool(v)
		return b
	case msgpack.Str, msgpack.Bin:
		b, _, _, _ := msgpack.ReadBytes(v)
		return string(b) == "true"
	}
	return false
}

func strField(rec []byte, key string) string {
	v, ok, _ := msgpack.MapGet(rec, key, maxDepth)
	if !ok {
		return ""
	}
	b, _, _, err := msgpack.ReadBytes(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// completed is a line ready to be passed on.
type completed struct {
	tag     string
	ev      event.Event
	updated time.Time // when the line last grew (orders timeout flushes)
}

func (c *concatStep) apply(r *Router, st *state, s *stepRT, p *plan, ev *event.Event, hops int) (verdict, string) {
	meta := readPartialMeta(ev.Record)
	if !meta.partial && c.flagLines.Load() == 0 {
		return vPass, ""
	}
	var text []byte
	if raw, ok, _ := msgpack.MapGet(ev.Record, c.key, maxDepth); ok {
		text, _, _, _ = msgpack.ReadBytes(raw)
	}
	k := lineKey{tag: p.tag, container: strField(ev.Record, "container_id"), source: strField(ev.Record, "source")}
	if meta.id != nil {
		k.id = string(meta.id)
	}
	var done []completed
	now := c.now()
	c.mu.Lock()
	if !meta.partial {
		// Before 18.06 the last fragment comes without the flag.
		l := c.lines[k]
		if l == nil {
			c.mu.Unlock()
			return vPass, ""
		}
		st.count(s.idx, cFragments)
		c.appendBytes(l, text)
		done = c.take(st, l, done, true)
		st.count(s.idx, cAssembled)
		c.mu.Unlock()
		c.passOn(r, st, s, done, hops)
		return vHold, ""
	}
	st.count(s.idx, cFragments)
	l := c.lines[k]
	if l == nil {
		if len(c.lines) >= c.maxPending {
			done = c.evictOldest(st, s, done)
		}
		l = &pendingLine{key: k, time: ev.Time, rec: append([]byte(nil), ev.Record...), next: 1}
		c.lines[k] = l
		if meta.id == nil {
			c.flagLines.Add(1)
		}
	}
	l.updated = now
	if meta.id == nil {
		c.appendBytes(l, text)
		if len(text) < dockerPartialSize {
			done = c.take(st, l, done, true)
			st.count(s.idx, cAssembled)
		}
	} else {
		ord := meta.ordinal
		if ord <= 0 {
			ord = l.next + len(l.ooo)
		}
		if meta.last {
			l.last = ord
		}
		if ord == l.next {
			c.appendBytes(l, text)
			l.next++
			for {
				b, ok := l.ooo[l.next]
				if !ok {
					break
				}
				delete(l.ooo, l.next)
				l.oooSize -= len(b)
				c.bytes -= len(b)
				c.appendBytes(l, b)
				l.next++
			}
		} else if ord > l.next {
			if l.ooo == nil {
				l.ooo = map[int][]byte{}
			}
			if _, dup := l.ooo[ord]; !dup {
				b := append([]byte(nil), text...)
				l.ooo[ord] = b
				l.oooSize += len(b)
				c.bytes += len(b)
			}
		} // an ordinal already passed is a duplicate: ignored
		if l.last > 0 && l.next > l.last {
			done = c.take(st, l, done, true)
			st.count(s.idx, cAssembled)
		} else if len(l.buf)+l.oooSize > c.maxSize {
			c.mergeOOO(l)
		}
	}
	// max_size: pass on full parts.
	if cur := c.lines[k]; cur != nil {
		for len(cur.buf) > c.maxSize {
			st.count(s.idx, cSplit)
			cur.parts++
			done = append(done, completed{tag: cur.key.tag, ev: event.Event{Time: cur.time, Record: c.build(st, cur, cur.buf[:c.maxSize])}})
			rest := cur.buf[c.maxSize:]
			cur.buf = append(cur.buf[:0], rest...)
			c.bytes -= c.maxSize
		}
	}
	c.gauges()
	c.mu.Unlock()
	c.passOn(r, st, s, done, hops)
	return vHold, ""
}

func (c *concatStep) appendBytes(l *pendingLine, b []byte) {
	l.buf = append(l.buf, b...)
	c.bytes += len(b)
}

// mergeOOO appends out-of-order fragments in ordinal order, giving up on
// the missing ones (used when a line grows past max_size or times out).
func (c *concatStep) mergeOOO(l *pendingLine) {
	if len(l.ooo) == 0 {
		return
	}
	ords := make([]int, 0, len(l.ooo))
	for o := range l.ooo {
		ords = append(ords, o)
	}
	sort.Ints(ords)
	for _, o := range ords {
		l.buf = append(l.buf, l.ooo[o]...)
		l.next = o + 1
	}
	l.ooo, l.oooSize = nil, 0
}

// take removes l and returns it as a completed event (records built in
// st's arena). Called with c.mu held.
func (c *concatStep) take(st *state, l *pendingLine, done []completed, all bool) []completed {
	c.mergeOOO(l)
	delete(c.lines, l.key)
	if l.key.id == "" {
		c.flagLines.Add(-1)
	}
	c.bytes -= len(l.buf)
	buf := l.buf
	for len(buf) > c.maxSize { // max_size: pass on parts
		st.count(c.s.idx, cSplit)
		l.parts++
		done = append(done, completed{tag: l.key.tag, ev: event.Event{Time: l.time, Record: c.build(st, l, buf[:c.maxSize])}})
		buf = buf[c.maxSize:]
	}
	if l.parts > 0 {
		c.logSplit(l, l.parts*c.maxSize+len(buf))
	}
	done = append(done, completed{tag: l.key.tag, ev: event.Event{Time: l.time, Record: c.build(st, l, buf)}, updated: l.updated})
	return done
}

// logSplit logs, rate-limited, that line l of size bytes was passed on in
// parts of max_size: which container and stream, how large, in how many
// parts. The container is named by the first fragment's container_name and
// container_id (Docker's fields).
func (c *concatStep) logSplit(l *pendingLine, size int) {
	ok, sup := c.splitLog.Allow()
	if !ok || c.log == nil {
		return
	}
	c.log.Warn("concat_partials: line longer than max_size stored in parts",
		"step", c.s.name, "tag", l.key.tag,
		"container_name", strField(l.rec, "container_name"), "container_id", l.key.container, "source", l.key.source,
		"size", size, "max_size", c.maxSize, "parts", l.parts+1, "suppressed", sup)
}

func (c *concatStep) evictOldest(st *state, s *stepRT, done []completed) []completed {
	var old *pendingLine
	for _, l := range c.lines {
		if old == nil || l.updated.Before(old.updated) {
			old = l
		}
	}
	if old == nil {
		return done
	}
	st.count(s.idx, cEvicted)
	return c.take(st, old, done, true)
}

// build encodes the first fragment's record with the key set to text and
// the partial_* keys removed, into st's arena.
func (c *concatStep) build(st *state, l *pendingLine, text []byte) []byte {
	n, rest, err := msgpack.ReadMapHeader(l.rec)
	if err != nil {
		return st.arena.Copy(l.rec)
	}
	out := st.out[:0]
	count := 0
	body := rest
	hasKey := false
	for i := 0; i < n; i++ {
		k, r1, _ := msgpack.ReadRaw(body, maxDepth)
		_, r2, _ := msgpack.ReadRaw(r1, maxDepth)
		body = r2
		if isPartialKey(k) {
			continue
		}
		if keyEquals(k, c.key) {
			hasKey = true
		}
		count++
	}
	if !hasKey {
		count++
	}
	out = msgpack.AppendMapHeader(out, count)
	for i := 0; i < n; i++ {
		k, r1, _ := msgpack.ReadRaw(rest, maxDepth)
		v, r2, _ := msgpack.ReadRaw(r1, maxDepth)
		rest = r2
		if isPartialKey(k) {
			continue
		}
		out = append(out, k...)
		if keyEquals(k, c.key) {
			if msgpack.Peek(v) == msgpack.Bin {
				out = msgpack.AppendBin(out, text)
			} else {
				out = msgpack.AppendStringBytes(out, text)
			}
			continue
		}
		out = append(out, v...)
	}
	if !hasKey {
		out = msgpack.AppendString(out, c.key)
		out = msgpack.AppendStringBytes(out, text)
	}
	st.out = out
	return st.arena.Copy(out)
}

func isPartialKey(k []byte) bool {
	kb := keyBytes(k)
	switch string(kb) {
	case "partial_message", "partial_id", "partial_ordinal", "partial_last":
		return true
	}
	return false
}

// passOn runs completed lines through the steps after this one.
func (c *concatStep) passOn(r *Router, st *state, s *stepRT, done []completed, hops int) {
	for _, d := range done {
		st.count(s.idx, cOut)
		r.run(st, d.tag, d.ev, s.idx+1, hops)
	}
}

func (c *concatStep) gauges() {
	if c.pending != nil {
		c.pending.Set(float64(len(c.lines)))
		c.pendingBytes.Set(float64(c.bytes))
	}
}

// expire passes on lines idle for the timeout (every line when all) through
// the following steps into st. It returns how many it passed on.
func (c *concatStep) expire(r *Router, st *state, now time.Time, all bool) int {
	var done []completed
	c.mu.Lock()
	for _, l := range c.lines {
		if all || now.Sub(l.updated) >= c.timeout {
			done = c.take(st, l, done, true)
		}
	}
	c.gauges()
	c.mu.Unlock()
	if len(done) == 0 {
		return 0
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].updated.Before(done[j].updated) })
	if c.timedOut != nil {
		c.timedOut.Add(float64(len(done)))
	}
	c.passOn(r, st, c.s, done, 0)
	st.flushCounters(r)
	return len(done)
}
