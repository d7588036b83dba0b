// Package encode turns a sealed chunk into the bytes of one object: a
// Parquet file (parquet.go: the table schema of sinks/schema, a file plan
// for one-pass encoding, sorting by time) or JSON lines (jsonl.go, like
// fluentd's format json, optionally gzip). Encoders stream the chunk from
// disk and bound their memory by a row group, not by the chunk. They know
// nothing about where the object goes: the sinks' transports stage and
// deliver what Encode writes.
//
// An Encoder is safe for concurrent use: the flush workers of one output
// encode chunks at once.
//
// Imports: internal/… and sinks/schema; never sinks (the transports) nor
// the AWS SDK. parquet-go is imported here and in athena only.
package encode
