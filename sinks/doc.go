// Package sinks delivers sealed buffer chunks to their destination: S3, a
// local folder, another Forward server, stdout or nowhere. It also owns the
// object key templates and the Parquet and JSON-lines encoders.
//
// The contract with the buffer (Sink, Chunk, Permanent) lives in
// internal/delivery, so the buffer does not import this package.
package sinks
