// Package fluentconf reads fluentd's configuration syntax (fluent.conf, v0.12
// and v1 spellings) and converts it into maruta's YAML configuration.
//
// The conversion keeps fluentd's routing: <filter> and rewrite_tag_filter
// <match> directives become pipeline steps in file order (rewrite steps with
// unmatched: drop, fluentd's behaviour; a step after a <match> that catches
// some of its tags gets exclude, because fluentd never applies it to them),
// and the other <match> directives become outputs in file order (first match
// wins, as in fluentd). <label @ERROR> becomes outputs for maruta's error
// route (tags maruta.error.**); without one, a null output discards parser
// errors as fluentd does.
//
// Supported: <source> forward (and monitor_agent / prometheus as maruta's
// HTTP endpoint); <filter> parser, record_transformer (without Ruby), grep,
// concat (Docker partial messages); <match> rewrite_tag_filter, copy, forest
// (with <template>), s3 (becomes Parquet on S3 under the same prefix, the
// time slice as folders), file (JSON lines), stdout, null, forward;
// <system> log_level; <label @ERROR>. Anything else — a plugin, a parameter
// or a section — is an error naming file:line and what is supported; nothing
// is dropped silently. Parameters maruta handles differently (buffer files,
// output formats, %{index} object keys) are mapped to their documented
// equivalent with a comment in the YAML.
//
// Imports: internal/config only; cmd/maruta calls it when the file it is
// given is a fluent.conf (run, validate, convert).
package fluentconf
