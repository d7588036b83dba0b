// Package ruby is maruta's fluentd compatibility: the parts of Ruby that
// fluentd configs and plugins rely on, done the same way in Go, so that a
// fluent.conf converted to maruta behaves as it did.
//
//   - Regular expressions (regexp.go): Ruby (Onigmo) patterns and the
//     "/re/flags" literal, translated to RE2; constructs RE2 cannot run in
//     linear time are refused with a message naming them.
//   - Values as text (str.go): to_s and inspect of msgpack values, String#to_i
//     and #to_f, String#scrub.
//   - Times (time.go): fluentd's TimeParser (time_type string, unixtime,
//     float), Ruby's strptime with one table entry per directive, ISO 8601,
//     and a lenient parse standing in for Time.parse.
//
// Everything here is pure: no I/O, safe for concurrent use once built. The
// router's parse, grep and rewrite_tag steps and tag patterns use it; its
// golden tests check the result against fluentd's behaviour.
//
// Imports: internal/event and internal/msgpack only.
package ruby
