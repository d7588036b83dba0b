package fluentconf

import (
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// stepNode starts a pipeline step for a <filter> or rewrite <match>.
func (c *converter) stepNode(e *element, typ, what string) (*ynode, error) {
	n := ymap()
	n.comment("%s %s", c.where(e.line), what)
	n.set("type", ystr(typ))
	if err := c.common(e, n, what, true); err != nil {
		return nil, err
	}
	pat := e.arg
	if pat == "" {
		pat = "**"
	}
	n.set("match", ystr(pat))
	if len(c.terminal) > 0 {
		ex := ystr(strings.Join(c.terminal, " "))
		ex.comments = []string{"fluentd never applies this to tags an earlier <match> already took:"}
		n.set("exclude_tags", ex)
	}
	return n, nil
}

func (c *converter) filter(e *element) error {
	e.used = true
	typ, line := e.typ()
	what := e.describe(typ)
	var n *ynode
	var err error
	switch typ {
	case "parser":
		n, err = c.parserFilter(e, what)
	case "record_transformer":
		n, err = c.recordTransformer(e, what)
	case "grep":
		n, err = c.grepFilter(e, what)
	case "concat":
		n, err = c.concatFilter(e, what)
	case "":
		return c.errorf(line, "<filter %s> needs @type", e.arg)
	default:
		return c.errorf(line, "%s is not supported (supported filters: parser, record_transformer, grep, concat)", what)
	}
	if err != nil {
		return err
	}
	if err := e.check(c.p, what); err != nil {
		return err
	}
	c.pipeline.add(n)
	return nil
}

func (c *converter) match(e *element, errLabel bool) error {
	e.used = true
	typ, line := e.typ()
	what := e.describe(typ)
	if errLabel {
		what = "<label @ERROR> " + what
	}
	if typ == "rewrite_tag_filter" {
		if errLabel {
			return c.errorf(line, "%s: rewrite_tag_filter is not supported in <label @ERROR>", what)
		}
		n, err := c.rewriteTagFilter(e, what)
		if err != nil {
			return err
		}
		if err := e.check(c.p, what); err != nil {
			return err
		}
		c.pipeline.add(n)
		return nil
	}
	if typ == "" {
		return c.errorf(line, "<match %s> needs @type", e.arg)
	}
	n, err := c.output(e, typ, what, false, false)
	if err != nil {
		return err
	}
	pat := e.arg
	if pat == "" {
		pat = "**"
	}
	if errLabel {
		var ps []string
		for _, f := range strings.Fields(pat) {
			if strings.HasPrefix(f, "/") {
				return c.errorf(e.line, "%s: a regular expression pattern cannot be moved under maruta.error.; use a glob", what)
			}
			if f == "**" {
				ps = append(ps, "maruta.error.**")
			} else {
				ps = append(ps, "maruta.error."+f)
			}
		}
		n.set("match", ystr(strings.Join(ps, " ")))
		n.comments = append(n.comments, "error route: fluentd's <label @ERROR> receives records the parser could not parse; maruta tags them maruta.error.<tag>.")
		moveMatchFirst(n)
		c.errOuts.add(n)
		return nil
	}
	n.set("match", ystr(pat))
	moveMatchFirst(n)
	c.terminal = append(c.terminal, strings.Fields(pat)...)
	c.outputs.add(n)
	return nil
}

// moveMatchFirst puts match right after type and name for readability.
func moveMatchFirst(n *ynode) {
	idx := -1
	for i, k := range n.keys {
		if k == "match" {
			idx = i
		}
	}
	if idx < 0 {
		return
	}
	pos := 1
	if len(n.keys) > 1 && n.keys[1] == "name" {
		pos = 2
	}
	if idx <= pos {
		return
	}
	k, v := n.keys[idx], n.vals[idx]
	copy(n.keys[pos+1:idx+1], n.keys[pos:idx])
	copy(n.vals[pos+1:idx+1], n.vals[pos:idx])
	n.keys[pos], n.vals[pos] = k, v
}

// parserFilter converts filter_parser (v1 <parse> or v0.12 flat format).
func (c *converter) parserFilter(e *element, what string) (*ynode, error) {
	c.parseSteps++
	n, err := c.stepNode(e, "parse", what)
	if err != nil {
		return nil, err
	}
	e.allow("key_name", "reserve_data", "reserve_time", "remove_key_name_field", "inject_key_prefix", "hash_value_field",
		"emit_invalid_record_to_error", "replace_invalid_sequence", "suppress_parse_error_log", "ignore_key_not_exist", "time_parse")
	e.allowElems("parse")
	key, ok := e.str("key_name")
	if !ok {
		return nil, c.errorf(e.line, "%s: key_name is required", what)
	}
	n.set("key", ystr(key))
	// The parser settings: <parse> (v1) or flat (v0.12).
	src := e
	if ps := e.children("parse"); len(ps) > 0 {
		if len(ps) > 1 {
			return nil, c.errorf(ps[1].line, "%s: more than one <parse>", what)
		}
		src = ps[0]
		if _, ok := e.get("format"); ok {
			return nil, c.errorf(e.line, "%s: both format and <parse>", what)
		}
	}
	timeParse := true
	if p, ok := e.get("time_parse"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return nil, err
		}
		timeParse = b
	}
	if err := c.parserSettings(src, n, what, timeParse); err != nil {
		return nil, err
	}
	for _, k := range []string{"reserve_data", "reserve_time", "remove_key_name_field"} {
		if p, ok := e.get(k); ok {
			b, err := c.boolean(p)
			if err != nil {
				return nil, err
			}
			if b {
				n.set(k, ybool(true))
			}
		}
	}
	for _, k := range []string{"inject_key_prefix", "hash_value_field"} {
		if v, ok := e.str(k); ok {
			n.set(k, ystr(v))
		}
	}
	if p, ok := e.get("emit_invalid_record_to_error"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return nil, err
		}
		if !b {
			n.set("emit_invalid_record_to_error", ybool(false))
		}
	}
	for _, k := range []string{"replace_invalid_sequence", "suppress_parse_error_log", "ignore_key_not_exist"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: not needed; maruta parses invalid byte sequences without failing and logs failures rate-limited.", k, p.val)
		}
	}
	if src != e {
		if err := src.check(c.p, what+" <parse>"); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// parserSettings reads format/@type, expression and the time settings of a
// parser (a <parse> section, or the filter itself for v0.12).
func (c *converter) parserSettings(src *element, n *ynode, what string, timeParse bool) error {
	src.allow("format", "@type", "type", "expression", "time_key", "time_format", "time_type", "keep_time_key", "types",
		"utc", "localtime", "timezone", "json_parser", "estimate_current_event", "ignorecase", "multiline")
	var format string
	var fline int
	if src.name == "parse" {
		format, fline = src.typ()
	} else if p, ok := src.get("format"); ok {
		format, fline = p.val, p.line
	}
	expression := ""
	switch {
	case format == "json":
		n.set("format", ystr("json"))
	case format == "regexp":
		p, ok := src.get("expression")
		if !ok {
			return c.errorf(fline, "%s: format regexp needs expression", what)
		}
		expression = p.val
	case strings.HasPrefix(format, "/"):
		expression = format // v0.12: format /regexp/
	case format == "":
		return c.errorf(src.line, "%s: the parser format is required (json or regexp)", what)
	default:
		return c.errorf(fline, "%s: parser format %q is not supported (supported: json, regexp, /regexp/)", what, format)
	}
	if expression != "" {
		n.set("format", ystr("regexp"))
		flags := ""
		for _, k := range []string{"ignorecase", "multiline"} {
			if p, ok := src.get(k); ok {
				b, err := c.boolean(p)
				if err != nil {
					return err
				}
				if b {
					flags += k[:1]
				}
			}
		}
		if flags != "" {
			if !strings.HasPrefix(expression, "/") {
				expression = "/" + expression + "/"
			}
			expression += flags
		}
		n.set("expression", ystr(expression))
	}
	// fluentd's parsers read "time" unless told otherwise; JSON reads it as a
	// float unless a time_format is given.
	timeKey, ok := src.str("time_key")
	if !ok {
		timeKey = "time"
	}
	timeFormat, hasFormat := src.str("time_format")
	timeType, hasType := src.str("time_type")
	if !hasType {
		timeType = "string"
		if format == "json" && !hasFormat {
			timeType = "float"
		}
	}
	if timeParse && timeKey != "" {
		n.set("time_key", ystr(timeKey))
		switch timeType {
		case "string", "unixtime", "float":
		default:
			return c.errorf(src.line, "%s: time_type %q is not string, unixtime or float", what, timeType)
		}
		n.set("time_type", ystr(timeType))
		if hasFormat {
			n.set("time_format", ystr(timeFormat))
		}
		if p, ok := src.get("keep_time_key"); ok {
			b, err := c.boolean(p)
			if err != nil {
				return err
			}
			if b {
				n.set("keep_time_key", ybool(true))
			}
		}
		if tz, ok := src.str("timezone"); ok {
			n.set("timezone", ystr(tz))
		} else if timeType == "string" && !strings.Contains(timeFormat, "%z") && !strings.Contains(timeFormat, "%Z") && timeFormat != "%iso8601" {
			if p, ok := src.get("utc"); !ok || p.val == "false" {
				n.comment("times without a zone are read as UTC (fluentd used its local time zone; set timezone to change).")
			}
		}
	}
	src.get("utc")
	if p, ok := src.get("localtime"); ok && p.val != "false" {
		n.comment("localtime %s: maruta reads times without a zone as UTC unless timezone is set.", p.val)
	}
	if p, ok := src.get("json_parser"); ok {
		n.comment("json_parser %s: maruta has one JSON parser (big integers stay exact).", p.val)
	}
	if p, ok := src.get("estimate_current_event"); ok {
		n.comment("estimate_current_event %s: without a time field the event keeps its own time.", p.val)
	}
	if p, ok := src.get("types"); ok {
		types, err := parseTypes(p.val)
		if err != nil {
			return c.errorf(p.line, "%s: types: %v", what, err)
		}
		tm := ymap()
		keys := make([]string, 0, len(types))
		for k := range types {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t := types[k]
			kind, _, _ := strings.Cut(t, ":")
			switch kind {
			case "string", "integer", "float", "bool", "array":
			default:
				return c.errorf(p.line, "%s: types %s:%s is not supported (supported: string, integer, float, bool, array)", what, k, t)
			}
			tm.set(quoteKey(k), ystr(t))
		}
		n.set("types", tm)
	}
	return nil
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func quoteKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return quote(k)
}

// parseTypes reads "a:integer,b:array:|" or the JSON form.
func parseTypes(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, t, ok := strings.Cut(f, ":")
		if !ok {
			return nil, errorString("want key:type, got " + strconv.Quote(f))
		}
		out[k] = t
	}
	return out, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

var placeholderRE = regexp.MustCompile(`(\$?)\$\{([^}]*)\}`)
var recordPH = regexp.MustCompile(`^(tag|hostname|tag_(parts|prefix|suffix)\[-?[0-9]+\])$`)
var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*(:-.*)?$`)

func (c *converter) recordTransformer(e *element, what string) (*ynode, error) {
	n, err := c.stepNode(e, "record", what)
	if err != nil {
		return nil, err
	}
	e.allow("enable_ruby", "auto_typecast", "renew_record", "renew_time_key", "keep_keys", "remove_keys")
	e.allowElems("record")
	for _, k := range []string{"enable_ruby", "auto_typecast", "renew_record"} {
		if p, ok := e.get(k); ok {
			b, err := c.boolean(p)
			if err != nil {
				return nil, err
			}
			if b {
				return nil, c.errorf(p.line, "%s: %s true is not supported (maruta evaluates no Ruby and edits records in place)", what, k)
			}
		}
	}
	for _, k := range []string{"renew_time_key", "keep_keys"} {
		if p, ok := e.get(k); ok {
			return nil, c.errorf(p.line, "%s: %s is not supported (supported: <record>, remove_keys)", what, k)
		}
	}
	set := ylist()
	for _, r := range e.children("record") {
		r.allowHost("*")
		if r.arg != "" {
			return nil, c.errorf(r.line, "%s: <record %s>: no argument expected", what, r.arg)
		}
		for _, p := range r.params {
			p.used = true
			for _, m := range placeholderRE.FindAllStringSubmatch(p.val, -1) {
				if m[1] == "$" {
					return nil, c.errorf(p.line, "%s: ${%s} (a record field) is not supported; the record step expands ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}", what, m[2])
				}
				if envName.MatchString(m[2]) {
					continue // an environment reference from #{ENV[…]}
				}
				if !recordPH.MatchString(m[2]) {
					return nil, c.errorf(p.line, "%s: placeholder ${%s} is not supported (supported: ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname})", what, m[2])
				}
			}
			if strings.Contains(p.val, "__") && regexp.MustCompile(`__[A-Z_]+__`).MatchString(p.val) {
				return nil, c.errorf(p.line, "%s: __PLACEHOLDER__ values are not supported; use ${tag}, ${hostname}", what)
			}
			set.add(ymap().set("key", ystr(p.key)).set("value", ystr(p.val)))
		}
		if err := r.check(c.p, what+" <record>"); err != nil {
			return nil, err
		}
		if len(r.elems) > 0 {
			return nil, c.errorf(r.elems[0].line, "%s: nested sections in <record> are not supported", what)
		}
	}
	if len(set.items) > 0 {
		n.set("set", set)
	}
	if v, ok := e.str("remove_keys"); ok {
		rm := ylist()
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				rm.add(ystr(k))
			}
		}
		n.set("remove", rm)
	}
	if n.get("set") == nil && n.get("remove") == nil {
		return nil, c.errorf(e.line, "%s: nothing to do (no <record> and no remove_keys)", what)
	}
	return n, nil
}

var numberedRule = regexp.MustCompile(`^(regexp|exclude)([1-9][0-9]*)$`)

func (c *converter) grepFilter(e *element, what string) (*ynode, error) {
	n, err := c.stepNode(e, "grep", what)
	if err != nil {
		return nil, err
	}
	e.allow("regexpN", "excludeN")
	e.allowElems("regexp", "exclude")
	lists := map[string]*ynode{"regexp": ylist(), "exclude": ylist()}
	// v0.12: regexp1 key pattern.
	type numbered struct {
		kind string
		n    int
		p    *param
	}
	var nums []numbered
	for _, p := range e.params {
		if m := numberedRule.FindStringSubmatch(p.key); m != nil {
			p.used = true
			i, _ := strconv.Atoi(m[2])
			nums = append(nums, numbered{m[1], i, p})
		}
	}
	sort.SliceStable(nums, func(i, j int) bool { return nums[i].n < nums[j].n })
	for _, r := range nums {
		key, pat, ok := strings.Cut(r.p.val, " ")
		if !ok || strings.TrimSpace(pat) == "" {
			return nil, c.errorf(r.p.line, "%s: %s wants \"key pattern\"", what, r.p.key)
		}
		lists[r.kind].add(ymap().set("key", ystr(key)).set("pattern", ystr(strings.TrimSpace(pat))))
	}
	for _, kind := range []string{"regexp", "exclude"} {
		for _, s := range e.children(kind) {
			s.allow("key", "pattern")
			k, ok1 := s.str("key")
			pt, ok2 := s.str("pattern")
			if !ok1 || !ok2 {
				return nil, c.errorf(s.line, "%s: <%s> needs key and pattern", what, kind)
			}
			if err := s.check(c.p, what+" <"+kind+">"); err != nil {
				return nil, err
			}
			lists[kind].add(ymap().set("key", ystr(k)).set("pattern", ystr(pt)))
		}
	}
	for _, s := range e.elems {
		if s.name == "and" || s.name == "or" {
			return nil, c.errorf(s.line, "%s: <%s> is not supported (top-level <regexp> rules all must match; any <exclude> drops)", what, s.name)
		}
	}
	for _, kind := range []string{"regexp", "exclude"} {
		if len(lists[kind].items) > 0 {
			n.set(kind, lists[kind])
		}
	}
	if n.get("regexp") == nil && n.get("exclude") == nil {
		return nil, c.errorf(e.line, "%s: no <regexp> or <exclude> rules", what)
	}
	return n, nil
}

// concatFilter maps fluent-plugin-concat's Docker partial-message modes to
// concat_partials.
func (c *converter) concatFilter(e *element, what string) (*ynode, error) {
	n, err := c.stepNode(e, "concat_partials", what)
	if err != nil {
		return nil, err
	}
	e.allow("key", "separator", "use_partial_metadata", "partial_key", "partial_value", "keep_partial_key", "keep_partial_metadata",
		"flush_interval", "timeout_label", "stream_identity_key", "use_first_timestamp", "partial_metadata_format", "buffer_limit_size",
		"buffer_overflow_method", "n_lines", "multiline_start_regexp", "multiline_end_regexp", "continuous_line_regexp")
	for _, k := range []string{"n_lines", "multiline_start_regexp", "multiline_end_regexp", "continuous_line_regexp"} {
		if p, ok := e.get(k); ok {
			return nil, c.errorf(p.line, "%s: %s (multi-line joining) is not supported; maruta's concat_partials joins Docker's split lines (use_partial_metadata, or partial_key partial_message)", what, k)
		}
	}
	meta := false
	if p, ok := e.get("use_partial_metadata"); ok {
		if meta, err = c.boolean(p); err != nil {
			return nil, err
		}
	}
	pk, hasPK := e.get("partial_key")
	pv, _ := e.str("partial_value")
	if !meta && !(hasPK && pk.val == "partial_message" && pv == "true") {
		return nil, c.errorf(e.line, "%s: only Docker partial messages are supported: set use_partial_metadata true, or partial_key partial_message with partial_value true", what)
	}
	if p, ok := e.get("separator"); !ok || p.val != "" {
		line := e.line
		if ok {
			line = p.line
		}
		return nil, c.errorf(line, "%s: separator must be \"\" (Docker splits a line without adding anything)", what)
	}
	key, ok := e.str("key")
	if !ok {
		key = "message"
	}
	n.set("key", ystr(key))
	if v, ok := e.str("flush_interval"); ok {
		n.set("timeout", ybare(durationText(v)))
	} else {
		n.set("timeout", ybare("60s"))
	}
	if v, ok := e.str("buffer_limit_size"); ok {
		n.set("max_size", ybare(sizeText(v)))
	}
	for _, k := range []string{"keep_partial_key", "keep_partial_metadata"} {
		if p, ok := e.get(k); ok && p.val == "true" {
			return nil, c.errorf(p.line, "%s: %s true is not supported (maruta removes the partial_* keys)", what, k)
		}
	}
	for _, k := range []string{"timeout_label", "stream_identity_key", "use_first_timestamp", "partial_metadata_format", "buffer_overflow_method"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: maruta groups fragments by tag, container_id, source and partial_id, keeps the first fragment's time, and passes a timed-out line on through the pipeline.", k, p.val)
		}
	}
	return n, nil
}

var rewriteRuleLine = regexp.MustCompile(`^(\S+)\s+(.+?)\s+(\S+)$`)

func (c *converter) rewriteTagFilter(e *element, what string) (*ynode, error) {
	n, err := c.stepNode(e, "rewrite_tag", what)
	if err != nil {
		return nil, err
	}
	e.allow("capitalize_regex_backreference", "remove_tag_prefix", "hostname_command", "rewriteruleN", "emit_mode")
	e.allowElems("rule")
	if p, ok := e.get("capitalize_regex_backreference"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return nil, err
		}
		if b {
			n.set("capitalize_regex_backreference", ybool(true))
		}
	}
	if v, ok := e.str("remove_tag_prefix"); ok {
		n.set("remove_tag_prefix", ystr(v))
	}
	if p, ok := e.get("hostname_command"); ok {
		n.comment("hostname_command %s: ${hostname} is maruta's host name (node); set hostname: to override.", p.val)
	}
	if p, ok := e.get("emit_mode"); ok {
		return nil, c.errorf(p.line, "%s: emit_mode is not supported", what)
	}
	n.set("unmatched", ystr("drop"))
	n.get("unmatched").comments = []string{"fluentd's rewrite_tag_filter drops the events no rule re-tags (counted in maruta)."}
	rules := ylist()
	type numbered struct {
		n int
		p *param
	}
	var nums []numbered
	for _, p := range e.params {
		if strings.HasPrefix(p.key, "rewriterule") {
			i, err := strconv.Atoi(strings.TrimPrefix(p.key, "rewriterule"))
			if err != nil {
				return nil, c.errorf(p.line, "%s: unsupported parameter %q", what, p.key)
			}
			p.used = true
			nums = append(nums, numbered{i, p})
		}
	}
	sort.SliceStable(nums, func(i, j int) bool { return nums[i].n < nums[j].n })
	for _, r := range nums {
		m := rewriteRuleLine.FindStringSubmatch(r.p.val)
		if m == nil {
			return nil, c.errorf(r.p.line, "%s: %s wants \"key pattern tag\"", what, r.p.key)
		}
		pat := m[2]
		if len(pat) >= 2 && strings.HasPrefix(pat, `"`) && strings.HasSuffix(pat, `"`) {
			pat = pat[1 : len(pat)-1]
		}
		rules.add(ymap().set("key", ystr(m[1])).set("pattern", ystr(pat)).set("tag", ystr(m[3])))
	}
	e.allowHost("rewriteruleN")
	for _, p := range e.params {
		if strings.HasPrefix(p.key, "rewriterule") {
			e.allowHost(p.key)
		}
	}
	for _, r := range e.children("rule") {
		r.allow("key", "pattern", "tag", "invert")
		r.allowHost("tag")
		k, ok1 := r.str("key")
		pt, ok2 := r.str("pattern")
		tg, ok3 := r.str("tag")
		if !ok1 || !ok2 || !ok3 {
			return nil, c.errorf(r.line, "%s: <rule> needs key, pattern and tag", what)
		}
		rn := ymap().set("key", ystr(k)).set("pattern", ystr(pt)).set("tag", ystr(tg))
		if p, ok := r.get("invert"); ok {
			b, err := c.boolean(p)
			if err != nil {
				return nil, err
			}
			if b {
				rn.set("invert", ybool(true))
			}
		}
		if err := r.check(c.p, what+" <rule>"); err != nil {
			return nil, err
		}
		rules.add(rn)
	}
	if len(rules.items) == 0 {
		return nil, c.errorf(e.line, "%s: no <rule>", what)
	}
	n.set("rules", rules)
	return n, nil
}
