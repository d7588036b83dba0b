package router

import (
	"math"
	"sort"
	"strings"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/ruby"
)

// parseStep is fluentd's filter_parser with the json and regexp parsers.
//
// Success: the parsed fields (time key removed unless keep_time_key, types
// converted, keys prefixed with inject_key_prefix, nested under
// hash_value_field) become the record; with reserve_data they are merged
// into the original record the way Ruby's Hash#merge does (an existing key
// keeps its place and takes the parsed value; new keys follow in parsed
// order), and remove_key_name_field drops the parsed key. The event time
// becomes the parsed time unless reserve_time; without a time field the
// event keeps its time (fluentd v0.12; v1 would stamp the current time).
//
// Failure, as fluentd: a missing key or a value that does not parse (bad
// JSON, JSON that is not an object, no regexp match) passes the original
// record on with reserve_data; otherwise, and always for a value that is not
// a string or a time that does not parse, the record goes to the error route
// (or is dropped with emit_invalid_record_to_error: false). Counted either
// way.
//
// protect_keys (not in fluentd) changes the merge for the keys it names: a
// parsed key (after inject_key_prefix and hash_value_field) equal to one of
// them, when the record has that key, does not replace it but is added as
// collision_prefix+key (the prefix repeated until no key of the record or of
// the parsed fields has that name). The embedded default protects Docker's
// container_id, container_name and source this way.
type parseStep struct {
	key         accessor
	topKey      string
	isTop       bool
	json        bool
	re          *ruby.Regexp
	names       []string
	reserveData bool
	reserveTime bool
	removeKey   bool
	prefix      string
	hashField   string
	timeKey     string
	keepTimeKey bool
	tp          *ruby.TimeParser
	autoTime    bool // time_type auto (autoTime)
	types       map[string]typeConv
	onlyObjects bool
	emitError   bool
	protect     map[string]bool
	collision   string
}

type typeConv struct {
	kind  string // string, integer, float, bool, array
	delim string
}

func newParseStep(cfg *config.Config, path string, c *config.ParseStep) (*parseStep, error) {
	p := &parseStep{
		reserveData: c.ReserveData,
		reserveTime: c.ReserveTime,
		removeKey:   c.RemoveKeyNameField,
		prefix:      c.InjectKeyPrefix,
		hashField:   c.HashValueField,
		timeKey:     c.TimeKey,
		keepTimeKey: c.KeepTimeKey,
		onlyObjects: c.OnlyObjects == nil || *c.OnlyObjects,
		emitError:   c.EmitInvalidRecordToError == nil || *c.EmitInvalidRecordToError,
		collision:   c.CollisionPrefix,
	}
	if len(c.ProtectKeys) > 0 {
		p.protect = map[string]bool{}
		for _, k := range c.ProtectKeys {
			p.protect[k] = true
		}
	}
	var err error
	if p.key, err = parseAccessor(c.Key); err != nil {
		return nil, cfg.Errorf(path+".key", "%v", err)
	}
	p.topKey, p.isTop = p.key.topLevel()
	switch c.Format {
	case "json":
		p.json = true
		if c.Expression != "" {
			return nil, cfg.Errorf(path+".expression", "expression applies to format regexp only")
		}
	case "regexp":
		if p.re, err = ruby.CompileRegexpLiteral(c.Expression); err != nil {
			return nil, cfg.Errorf(path+".expression", "%v", err)
		}
		for _, n := range p.re.SubexpNames() {
			if n != "" {
				p.names = append(p.names, n)
			}
		}
		if len(p.names) == 0 {
			return nil, cfg.Errorf(path+".expression", "needs at least one named group (?<name>…)")
		}
	default:
		return nil, cfg.Errorf(path+".format", "%q is not json or regexp", c.Format)
	}
	if c.Timezone != "" {
		if _, err := ruby.ParseTimezone(c.Timezone); err != nil {
			return nil, cfg.Errorf(path+".timezone", "%v", err)
		}
	}
	if c.TimeKey != "" {
		typ := c.TimeType
		if typ == "auto" { // strings: the lenient parse; numbers: autoTime
			typ, p.autoTime = "", true
		}
		if p.tp, err = ruby.NewTimeParser(typ, c.TimeFormat, c.Timezone); err != nil {
			return nil, cfg.Errorf(path+".time_format", "%v", err)
		}
	} else if c.TimeFormat != "" || c.TimeType != "" {
		return nil, cfg.Errorf(path+".time_key", "time_format and time_type need time_key (the parsed field that holds the time)")
	}
	if len(c.Types) > 0 {
		p.types = map[string]typeConv{}
		keys := make([]string, 0, len(c.Types))
		for k := range c.Types {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := c.Types[k]
			kind, opt, _ := strings.Cut(v, ":")
			switch kind {
			case "string", "integer", "float", "bool":
			case "array":
				if opt == "" {
					opt = ","
				}
			default:
				return nil, cfg.Errorf(path+".types."+k, "type %q is not one of string, integer, float, bool, array", v)
			}
			p.types[k] = typeConv{kind: kind, delim: opt}
		}
	}
	return p, nil
}

const (
	failKeyMissing = iota
	failNotString
	failInvalid
	failTime
)

func (p *parseStep) fail(r *Router, st *state, s *stepRT, pl *plan, ev *event.Event, reason int, detail string) (verdict, string) {
	if p.reserveData && (reason == failKeyMissing || reason == failInvalid) {
		// Kept as it is (a plain-text line stays in log): not a failure.
		if reason == failKeyMissing {
			st.count(s.idx, cParseKeptKeyMissing)
		} else {
			st.count(s.idx, cParseKeptInvalid)
		}
		if p.hashField != "" {
			// fluentd merges {hash_value_field => {}} into the record.
			ev.Record = st.arena.Copy(p.merge(st, ev.Record, []byte{0x80}, false))
		}
		return vPass, ""
	}
	if p.emitError {
		st.count(s.idx, [...]int{cParseErrorKeyMissing, cParseErrorNotString, cParseErrorInvalid, cParseErrorTime}[reason])
		return vError, ""
	}
	st.count(s.idx, [...]int{cParseDroppedKeyMissing, cParseDroppedNotString, cParseDroppedInvalid, cParseDroppedTime}[reason])
	if ok, sup := s.dropLog.Allow(); ok {
		r.log.Warn("parse: record does not parse; dropped (emit_invalid_record_to_error: false)", "step", s.name, "tag", pl.tag,
			"reason", [...]string{"key_missing", "not_string", "invalid", "time"}[reason], "suppressed", sup)
	}
	return vDrop, ""
}

func (p *parseStep) apply(r *Router, st *state, s *stepRT, pl *plan, ev *event.Event, hops int) (verdict, string) {
	var raw []byte
	var ok bool
	if p.isTop {
		raw, ok, _ = msgpack.MapGet(ev.Record, p.topKey, maxDepth)
	} else {
		raw, ok = p.key.get(ev.Record)
	}
	if !ok {
		return p.fail(r, st, s, pl, ev, failKeyMissing, "")
	}
	t := msgpack.Peek(raw)
	if t != msgpack.Str && t != msgpack.Bin {
		if t == msgpack.Nil {
			return p.fail(r, st, s, pl, ev, failKeyMissing, "") // record[key] is nil: as missing
		}
		return p.fail(r, st, s, pl, ev, failNotString, "")
	}
	text, _, _, _ := msgpack.ReadBytes(raw)

	// Parse into st.parsed as one msgpack map.
	var err error
	if p.json {
		st.parsed, err = st.jconv.Append(st.parsed[:0], text, maxDepth)
		if err != nil || msgpack.Peek(st.parsed) != msgpack.Map {
			return p.fail(r, st, s, pl, ev, failInvalid, "")
		}
	} else {
		loc := p.re.FindSubmatchIndex(text)
		if loc == nil {
			return p.fail(r, st, s, pl, ev, failInvalid, "")
		}
		names := p.re.SubexpNames()
		n := 0
		for i := 1; i < len(names); i++ {
			if names[i] != "" && loc[2*i] >= 0 {
				n++
			}
		}
		st.parsed = msgpack.AppendMapHeader(st.parsed[:0], n)
		for i := 1; i < len(names); i++ {
			if names[i] != "" && loc[2*i] >= 0 {
				st.parsed = msgpack.AppendString(st.parsed, names[i])
				st.parsed = msgpack.AppendStringBytes(st.parsed, text[loc[2*i]:loc[2*i+1]])
			}
		}
	}

	// Collect the parsed pairs; take out the time.
	st.kvs = st.kvs[:0]
	n, rest, _ := msgpack.ReadMapHeader(st.parsed)
	newTime := ev.Time
	for i := 0; i < n; i++ {
		k, r1, err := msgpack.ReadRaw(rest, maxDepth)
		if err != nil {
			return p.fail(r, st, s, pl, ev, failInvalid, "")
		}
		v, r2, err := msgpack.ReadRaw(r1, maxDepth)
		if err != nil {
			return p.fail(r, st, s, pl, ev, failInvalid, "")
		}
		rest = r2
		kb := keyBytes(k)
		if p.tp != nil && p.autoTime && string(kb) == p.timeKey {
			if tm, ok := p.parseAutoTime(v); ok {
				if !p.reserveTime {
					newTime = tm
				}
				if !p.keepTimeKey {
					continue
				}
			} else {
				st.count(s.idx, cParseKeptTime) // not a time: the value stays
			}
		} else if p.tp != nil && string(kb) == p.timeKey {
			tm, err := p.tp.Parse(v)
			if err != nil {
				if ok, sup := s.dropLog.Allow(); ok {
					r.log.Warn("parse: time field does not parse", "step", s.name, "tag", pl.tag, "error", err, "suppressed", sup)
				}
				return p.fail(r, st, s, pl, ev, failTime, err.Error())
			}
			if !p.reserveTime {
				newTime = tm
			}
			if !p.keepTimeKey {
				continue
			}
		}
		if p.types != nil {
			if tc, ok := p.types[string(kb)]; ok && msgpack.Peek(v) != msgpack.Nil {
				st.tmp = convertType(st.tmp[:0], v, tc)
				v = st.arena.Copy(st.tmp)
			}
		}
		st.kvs = append(st.kvs, kv{key: kb, val: v})
	}

	// Build the values map (prefix, hash_value_field).
	vals := msgpack.AppendMapHeader(st.vals[:0], len(st.kvs))
	for _, e := range st.kvs {
		if p.prefix != "" {
			vals = appendStrHeaderLen(vals, len(p.prefix)+len(e.key))
			vals = append(vals, p.prefix...)
			vals = append(vals, e.key...)
		} else {
			vals = msgpack.AppendStringBytes(vals, e.key)
		}
		vals = append(vals, e.val...)
	}
	st.vals = vals

	out := vals
	if p.hashField != "" || p.reserveData {
		out = p.merge(st, ev.Record, vals, true)
	}
	ev.Record = st.arena.Copy(out)
	ev.Time = newTime
	return vPass, ""
}

// merge returns record.merge(values) (Ruby semantics), values wrapped in
// hash_value_field when set; without reserve_data just the (wrapped) values.
// success applies remove_key_name_field (fluentd removes the key only after
// a successful parse). The result lives in st.out.
func (p *parseStep) merge(st *state, record, vals []byte, success bool) []byte {
	if p.hashField != "" {
		w := msgpack.AppendMapHeader(st.scratch[:0], 1)
		w = msgpack.AppendString(w, p.hashField)
		w = append(w, vals...)
		st.scratch = w
		vals = w
	}
	if !p.reserveData {
		return vals
	}
	removeTop := success && p.removeKey && p.isTop
	if success && p.removeKey && !p.isTop {
		if nr, changed := appendDelete(nil, record, p.key.path); changed {
			record = nr
		}
	}
	st.kvs = st.kvs[:0]
	n, rest, _ := msgpack.ReadMapHeader(vals)
	for i := 0; i < n; i++ {
		k, r1, _ := msgpack.ReadRaw(rest, maxDepth)
		v, r2, _ := msgpack.ReadRaw(r1, maxDepth)
		rest = r2
		st.kvs = append(st.kvs, kv{key: keyBytes(k), val: v})
	}
	rn, rrest, err := msgpack.ReadMapHeader(record)
	if err != nil {
		return vals
	}
	if p.protect != nil {
		p.renameProtected(st, record)
	}
	// First pass: count kept record keys and mark the values that replace
	// one (Hash#merge keeps the key where it was).
	count := 0
	body := rrest
	for i := 0; i < rn; i++ {
		k, r1, err := msgpack.ReadRaw(body, maxDepth)
		if err != nil {
			return vals
		}
		_, r2, err := msgpack.ReadRaw(r1, maxDepth)
		if err != nil {
			return vals
		}
		body = r2
		if removeTop && keyEquals(k, p.topKey) {
			continue
		}
		count++
		if kb := keyBytes(k); kb != nil {
			for j := range st.kvs {
				if !st.kvs[j].used && string(st.kvs[j].key) == string(kb) {
					st.kvs[j].used = true
					break
				}
			}
		}
	}
	for j := range st.kvs {
		if !st.kvs[j].used {
			count++
		}
		st.kvs[j].used = false
	}
	out := msgpack.AppendMapHeader(st.out[:0], count)
	body = rrest
	for i := 0; i < rn; i++ {
		k, r1, _ := msgpack.ReadRaw(body, maxDepth)
		v, r2, _ := msgpack.ReadRaw(r1, maxDepth)
		body = r2
		if removeTop && keyEquals(k, p.topKey) {
			continue
		}
		out = append(out, k...)
		if kb := keyBytes(k); kb != nil {
			for j := range st.kvs {
				if !st.kvs[j].used && string(st.kvs[j].key) == string(kb) {
					st.kvs[j].used = true
					v = st.kvs[j].val
					break
				}
			}
		}
		out = append(out, v...)
	}
	for j := range st.kvs {
		if !st.kvs[j].used {
			out = msgpack.AppendStringBytes(out, st.kvs[j].key)
			out = append(out, st.kvs[j].val...)
		}
	}
	st.out = out
	return out
}

// renameProtected renames the parsed keys in st.kvs that would replace a
// protected key of record: collision_prefix+key, the prefix repeated until
// the name is taken by neither the record nor the parsed fields.
func (p *parseStep) renameProtected(st *state, record []byte) {
	for i := range st.kvs {
		k := st.kvs[i].key
		if !p.protect[string(k)] {
			continue
		}
		if _, ok, _ := msgpack.MapGet(record, string(k), maxDepth); !ok {
			continue
		}
		name := string(k)
		for {
			name = p.collision + name
			if _, ok, _ := msgpack.MapGet(record, name, maxDepth); ok {
				continue
			}
			taken := false
			for j := range st.kvs {
				if string(st.kvs[j].key) == name {
					taken = true
					break
				}
			}
			if !taken {
				break
			}
		}
		st.kvs[i].key = st.arena.Copy([]byte(name))
	}
}

// Epoch numbers autoTime takes for a time: from 2000-01-01 to 2100-01-01
// in seconds; the same span in milliseconds, microseconds, nanoseconds.
const (
	autoEpochMin = 946684800
	autoEpochMax = 4102444800
)

// parseAutoTime reads time_type auto: an RFC 3339 / ISO 8601 string (the
// lenient parse of fluentd's string type without a format), or a number
// of epoch seconds, milliseconds, microseconds or nanoseconds, told apart
// by size. A number outside 2000-2100 in every unit is not a time (a
// field named time may hold a duration).
func (p *parseStep) parseAutoTime(v []byte) (event.Time, bool) {
	var f float64
	switch msgpack.Peek(v) {
	case msgpack.Str, msgpack.Bin:
		tm, err := p.tp.Parse(v)
		return tm, err == nil
	case msgpack.Int:
		var i int64
		if msgpack.IsUint64(v) {
			u, _, err := msgpack.ReadUint64(v)
			if err != nil || u > math.MaxInt64 {
				return 0, false
			}
			i = int64(u)
		} else if x, _, err := msgpack.ReadInt(v); err == nil {
			i = x
		} else {
			return 0, false
		}
		for _, u := range []int64{1e9, 1e6, 1e3, 1} { // ns per unit: s, ms, µs, ns
			if per := 1e9 / u; i >= autoEpochMin*per && i < autoEpochMax*per {
				return event.Time(i * u), true
			}
		}
		return 0, false
	case msgpack.Float:
		f, _, _ = msgpack.ReadFloat(v)
	default:
		return 0, false
	}
	for _, u := range []int64{1e9, 1e6, 1e3, 1} {
		if per := float64(1e9 / u); f >= autoEpochMin*per && f < autoEpochMax*per {
			whole, frac := math.Modf(f) // exact parts: 1795352645.75 is .75 s, not .750000128
			return event.Time(int64(whole)*u + int64(math.Round(frac*float64(u)))), true
		}
	}
	return 0, false
}

func appendStrHeaderLen(dst []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xda, byte(n>>8), byte(n))
	}
	return append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// convertType applies a types entry to one parsed value (Ruby semantics).
func convertType(dst, v []byte, tc typeConv) []byte {
	var buf [64]byte
	switch tc.kind {
	case "string":
		return msgpack.AppendStringBytes(dst, ruby.AppendToS(buf[:0], v))
	case "integer":
		switch msgpack.Peek(v) {
		case msgpack.Int:
			return append(dst, v...)
		case msgpack.Float:
			f, _, _ := msgpack.ReadFloat(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return append(dst, v...)
			}
			return msgpack.AppendInt(dst, int64(f))
		}
		return msgpack.AppendInt(dst, ruby.ToI(ruby.AppendToS(buf[:0], v)))
	case "float":
		switch msgpack.Peek(v) {
		case msgpack.Float:
			return append(dst, v...)
		case msgpack.Int:
			if msgpack.IsUint64(v) {
				u, _, _ := msgpack.ReadUint64(v)
				return msgpack.AppendFloat64(dst, float64(u))
			}
			i, _, _ := msgpack.ReadInt(v)
			return msgpack.AppendFloat64(dst, float64(i))
		}
		return msgpack.AppendFloat64(dst, ruby.ToF(ruby.AppendToS(buf[:0], v)))
	case "bool":
		s := strings.ToLower(string(ruby.AppendToS(buf[:0], v)))
		return msgpack.AppendBool(dst, s == "true" || s == "yes" || s == "1")
	case "array":
		s := string(ruby.AppendToS(buf[:0], v))
		parts := strings.Split(s, tc.delim)
		if s == "" {
			parts = nil
		}
		for len(parts) > 0 && parts[len(parts)-1] == "" { // Ruby's split drops trailing empties
			parts = parts[:len(parts)-1]
		}
		dst = msgpack.AppendArrayHeader(dst, len(parts))
		for _, e := range parts {
			dst = msgpack.AppendString(dst, e)
		}
		return dst
	}
	return append(dst, v...)
}
