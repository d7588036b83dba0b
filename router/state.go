package router

import (
	"github.com/marutalog/maruta/internal/arena"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// state is the scratch space of one Consume call (or one timeout flush):
// the arena new records live in, the output groups, counters, and reusable
// buffers. States are pooled; nothing in a state outlives the call.
type state struct {
	arena   arena.Arena
	groups  []group
	counts  []int64 // len(steps) * nCounters
	last    *plan
	scratch []byte // a record or tag being built
	text    []byte // a value as text
	tmp     []byte
	tagBuf  []byte
	parsed  []byte // parse step output before merging
	vals    []byte // parsed values as a map
	out     []byte // a merged record
	kvs     []kv
	pairs   []recPair
	ends    []int
	jconv   msgpack.JSONConverter
	slots   [8]event.Event // events being processed, by run depth
	depth   int
}

type kv struct {
	key  []byte // key bytes (not msgpack)
	val  []byte // raw msgpack value
	used bool
}

type group struct {
	out    int
	tag    string
	events []event.Event
}

// State arenas: 64 KiB blocks, 4 MiB of them kept across calls.
const (
	arenaBlock     = 64 << 10
	arenaKeepBytes = 4 << 20
)

func newState(steps int) any {
	return &state{counts: make([]int64, steps*nCounters), arena: arena.New(arenaBlock, arenaKeepBytes)}
}

func (r *Router) getState() *state { return r.states.Get().(*state) }

func (r *Router) putState(st *state) {
	st.arena.Reset()
	for i := range st.groups {
		g := &st.groups[i]
		clear(g.events)
		g.events = g.events[:0]
		g.tag = ""
	}
	st.groups = st.groups[:0]
	st.last = nil
	if cap(st.scratch) > 1<<20 {
		st.scratch = nil
	}
	if cap(st.parsed) > 1<<20 {
		st.parsed = nil
	}
	r.states.Put(st)
}

func (st *state) count(step, c int) { st.counts[step*nCounters+c]++ }

// flushCounters adds the call's counts to the step counters and clears
// them.
func (st *state) flushCounters(r *Router) {
	for i, s := range r.steps {
		base := i * nCounters
		for c := 0; c < nCounters; c++ {
			if n := st.counts[base+c]; n != 0 {
				s.counters[c].Add(float64(n))
				st.counts[base+c] = 0
				switch c {
				case cUnmatchedDrop:
					r.m.dropped.WithLabelValues(s.name, "rewrite_unmatched").Add(float64(n))
				case cLoopCut:
					r.m.dropped.WithLabelValues(s.name, "rewrite_loop").Add(float64(n))
				case cParseDroppedKeyMissing, cParseDroppedNotString, cParseDroppedInvalid, cParseDroppedTime:
					r.m.dropped.WithLabelValues(s.name, "parse_failed").Add(float64(n))
				}
			}
		}
	}
}

// add appends ev to the group of (out, tag).
func (st *state) add(out int, tag string, ev event.Event) {
	for i := len(st.groups) - 1; i >= 0; i-- {
		g := &st.groups[i]
		if g.out == out && g.tag == tag {
			g.events = append(g.events, ev)
			return
		}
	}
	if len(st.groups) < cap(st.groups) {
		st.groups = st.groups[:len(st.groups)+1]
		g := &st.groups[len(st.groups)-1]
		g.out, g.tag = out, tag
		g.events = append(g.events, ev)
		return
	}
	st.groups = append(st.groups, group{out: out, tag: tag, events: []event.Event{ev}})
}
