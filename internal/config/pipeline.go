package config

// Step is one pipeline step: exactly one of the typed pointers is set,
// selected by Type. Steps run in order for events whose tag matches Match.
type Step struct {
	StepCommon
	Parse          *ParseStep          `yaml:"-"`
	RewriteTag     *RewriteTagStep     `yaml:"-"`
	ConcatPartials *ConcatPartialsStep `yaml:"-"`
	Record         *RecordStep         `yaml:"-"`
	Grep           *GrepStep           `yaml:"-"`
}

// StepCommon holds the keys every step has.
type StepCommon struct {
	// Type is parse, rewrite_tag, concat_partials, record or grep.
	Type string `yaml:"type"`
	// Name labels the step in metrics and logs. Default: type and index.
	Name string `yaml:"name,omitempty"`
	// Match is a fluentd tag pattern. Default "**" (every tag).
	Match string `yaml:"match,omitempty"`
	// Exclude is a tag pattern the step skips even when Match matches. The
	// fluent.conf importer uses it for a <filter> that follows a <match>
	// catching some of its tags, which fluentd never applies to them.
	// (YAML key exclude_tags: grep's `exclude` rules own the key `exclude`.)
	Exclude string `yaml:"exclude_tags,omitempty"`
}

// ParseStep is fluentd's filter_parser.
type ParseStep struct {
	StepCommon `yaml:",inline"`
	// Key is the record key holding the text to parse (fluentd key_name).
	Key string `yaml:"key"`
	// Format is json or regexp.
	Format string `yaml:"format"`
	// Expression is the regexp for format regexp, with named groups.
	Expression         string `yaml:"expression,omitempty"`
	ReserveData        bool   `yaml:"reserve_data,omitempty"`
	ReserveTime        bool   `yaml:"reserve_time,omitempty"`
	RemoveKeyNameField bool   `yaml:"remove_key_name_field,omitempty"`
	InjectKeyPrefix    string `yaml:"inject_key_prefix,omitempty"`
	HashValueField     string `yaml:"hash_value_field,omitempty"`
	TimeKey            string `yaml:"time_key,omitempty"`
	TimeFormat         string `yaml:"time_format,omitempty"`
	// TimeType is fluentd's string (time_format, or a lenient parse
	// without one), unixtime or float; or auto (maruta's, what the
	// embedded default uses for a JSON line's "time"): an RFC 3339 / ISO
	// 8601 string (fraction and zone optional; without a zone in timezone)
	// or a number of epoch seconds, milliseconds, microseconds or
	// nanoseconds (told apart by size; between the years 2000 and 2100),
	// and a value that is neither stays in the record under time_key, as
	// text, and the event keeps its time (not a failure).
	TimeType    string `yaml:"time_type,omitempty"`
	KeepTimeKey bool   `yaml:"keep_time_key,omitempty"`
	// Timezone reads times whose format has no %z: "+09:00", "-0500" or an
	// IANA name. Default UTC.
	Timezone string `yaml:"timezone,omitempty"`
	// EmitInvalidRecordToError sends records that fail to parse to the
	// error route (re-tagged maruta.error.<tag>); false drops them (counted).
	// Default true. With reserve_data, unparsable text passes on instead.
	EmitInvalidRecordToError *bool `yaml:"emit_invalid_record_to_error,omitempty"`
	// Types converts parsed fields: "key:integer,key2:float" style map.
	Types map[string]string `yaml:"types,omitempty"`
	// OnlyObjects, for format json, treats a line that is valid JSON but not
	// an object as a parse failure. Default true.
	OnlyObjects *bool `yaml:"only_objects,omitempty"`
	// ProtectKeys (with reserve_data) are keys of the original record that
	// parsed fields never replace, e.g. Docker's container_id,
	// container_name, source. A parsed key that collides with one present
	// in the record is kept as CollisionPrefix + key instead (the prefix
	// repeated until the name is free). Not in fluentd: its merge lets the
	// parsed value win, which is what an empty list does.
	ProtectKeys []string `yaml:"protect_keys,omitempty"`
	// CollisionPrefix is the prefix of a parsed key renamed because of
	// protect_keys. Default app_.
	CollisionPrefix string `yaml:"collision_prefix,omitempty"`
}

// RewriteTagStep is fluent-plugin-rewrite-tag-filter.
type RewriteTagStep struct {
	StepCommon                   `yaml:",inline"`
	Rules                        []RewriteRule `yaml:"rules"`
	CapitalizeRegexBackreference bool          `yaml:"capitalize_regex_backreference,omitempty"`
	RemoveTagPrefix              string        `yaml:"remove_tag_prefix,omitempty"`
	Hostname                     string        `yaml:"hostname,omitempty"`
	// Unmatched says what happens to events no rule matches: keep (native
	// default: they continue with their tag) or drop (fluentd's behaviour,
	// the default for an imported fluent.conf). Counted either way.
	Unmatched Unmatched `yaml:"unmatched,omitempty"`
	// MaxHops bounds how many times one event may be re-tagged. Default 8.
	MaxHops int `yaml:"max_hops,omitempty"`
}

// RewriteRule is one <rule>.
type RewriteRule struct {
	Key     string `yaml:"key"`
	Pattern string `yaml:"pattern"`
	Tag     string `yaml:"tag"`
	Invert  bool   `yaml:"invert,omitempty"`
}

// ConcatPartialsStep reassembles Docker's split log lines.
type ConcatPartialsStep struct {
	StepCommon `yaml:",inline"`
	// Key is the field holding the text. Default log.
	Key string `yaml:"key,omitempty"`
	// Timeout flushes an unfinished line. Default 5s.
	Timeout Duration `yaml:"timeout,omitempty"`
	// MaxSize bounds an assembled line; larger lines are flushed in parts.
	// Default 1MiB.
	MaxSize Size `yaml:"max_size,omitempty"`
	// MaxPending bounds the lines held at once. Default 10000.
	MaxPending int `yaml:"max_pending,omitempty"`
}

// RecordStep edits records (a subset of record_transformer).
type RecordStep struct {
	StepCommon `yaml:",inline"`
	Set        []KeyValue `yaml:"set,omitempty"`
	Remove     []string   `yaml:"remove,omitempty"`
	Rename     []KeyValue `yaml:"rename,omitempty"`
}

// KeyValue is an ordered pair.
type KeyValue struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// GrepStep keeps or drops events by regular expressions on keys.
type GrepStep struct {
	StepCommon `yaml:",inline"`
	// Regexp: an event is kept only when every rule matches.
	Regexp []GrepRule `yaml:"regexp,omitempty"`
	// Exclude: an event is dropped when any rule matches.
	Exclude []GrepRule `yaml:"exclude,omitempty"`
}

// GrepRule matches one key against a pattern.
type GrepRule struct {
	Key     string `yaml:"key"`
	Pattern string `yaml:"pattern"`
}
