package router

import (
	"fmt"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// recordStep edits records, a subset of fluentd's record_transformer. In
// order: rename (the key keeps its place), set (an existing key keeps its
// place, a new one is appended; values are strings and may use ${tag},
// ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]} and ${hostname}, N
// negative counting from the end), then remove (top-level keys or $.a.b
// paths). The record is re-encoded once.
type recordStep struct {
	rename       []renamePair
	set          []setPair
	removeTop    []string
	removeNested []accessor
}

type renamePair struct {
	from, to string
	toKey    []byte
}

type setPair struct {
	key  string
	keyB []byte
	tmpl valueTemplate
}

func newRecordStep(cfg *config.Config, path string, c *config.RecordStep) (*recordStep, error) {
	s := &recordStep{}
	for _, kv := range c.Rename {
		s.rename = append(s.rename, renamePair{kv.Key, kv.Value, []byte(kv.Value)})
	}
	for i, kv := range c.Set {
		t, err := compileValueTemplate(kv.Value)
		if err != nil {
			return nil, cfg.Errorf(fmt.Sprintf("%s.set[%d].value", path, i), "%v", err)
		}
		s.set = append(s.set, setPair{kv.Key, []byte(kv.Key), t})
	}
	for i, k := range c.Remove {
		a, err := parseAccessor(k)
		if err != nil {
			return nil, cfg.Errorf(fmt.Sprintf("%s.remove[%d]", path, i), "%v", err)
		}
		if top, ok := a.topLevel(); ok {
			s.removeTop = append(s.removeTop, top)
		} else {
			s.removeNested = append(s.removeNested, a)
		}
	}
	return s, nil
}

func (rs *recordStep) apply(r *Router, st *state, s *stepRT, p *plan, ev *event.Event, hops int) (verdict, string) {
	n, rest, err := msgpack.ReadMapHeader(ev.Record)
	if err != nil {
		return vPass, ""
	}
	pairs := st.pairs[:0]
	for i := 0; i < n; i++ {
		k, r1, err := msgpack.ReadRaw(rest, maxDepth)
		if err != nil {
			return vPass, ""
		}
		v, r2, err := msgpack.ReadRaw(r1, maxDepth)
		if err != nil {
			return vPass, ""
		}
		rest = r2
		pairs = append(pairs, recPair{name: keyBytes(k), raw: k, val: v})
	}
	find := func(name string) int {
		for i := range pairs {
			if !pairs[i].gone && pairs[i].name != nil && string(pairs[i].name) == name {
				return i
			}
		}
		return -1
	}
	for _, rn := range rs.rename {
		i := find(rn.from)
		if i < 0 || rn.from == rn.to {
			continue
		}
		if j := find(rn.to); j >= 0 {
			pairs[j].gone = true
		}
		pairs[i].name, pairs[i].raw = rn.toKey, nil
	}
	// Expand set values into st.tmp; slice them once it stops growing.
	st.tmp = st.tmp[:0]
	ends := st.ends[:0]
	for _, sp := range rs.set {
		st.tmp = sp.tmpl.expand(st.tmp, &p.tc)
		ends = append(ends, len(st.tmp))
	}
	st.ends = ends
	for k, sp := range rs.set {
		from := 0
		if k > 0 {
			from = ends[k-1]
		}
		val := st.tmp[from:ends[k]:ends[k]]
		if i := find(sp.key); i >= 0 {
			pairs[i].str, pairs[i].isStr = val, true
		} else {
			pairs = append(pairs, recPair{name: sp.keyB, str: val, isStr: true})
		}
	}
	for _, k := range rs.removeTop {
		for i := range pairs {
			if !pairs[i].gone && pairs[i].name != nil && string(pairs[i].name) == k {
				pairs[i].gone = true
			}
		}
	}
	count := 0
	for i := range pairs {
		if !pairs[i].gone {
			count++
		}
	}
	out := msgpack.AppendMapHeader(st.out[:0], count)
	for i := range pairs {
		e := &pairs[i]
		if e.gone {
			continue
		}
		if e.raw != nil {
			out = append(out, e.raw...)
		} else {
			out = msgpack.AppendStringBytes(out, e.name)
		}
		if e.isStr {
			out = msgpack.AppendStringBytes(out, e.str)
		} else {
			out = append(out, e.val...)
		}
	}
	st.out = out
	clear(pairs)
	st.pairs = pairs[:0]
	for _, a := range rs.removeNested {
		if nr, changed := appendDelete(nil, out, a.path); changed {
			out = nr
		}
	}
	ev.Record = st.arena.Copy(out)
	return vPass, ""
}

type recPair struct {
	name  []byte // key text; nil for a key that is not a string
	raw   []byte // the key as written; nil when renamed
	val   []byte // raw value
	str   []byte // a set value (string)
	isStr bool
	gone  bool
}
