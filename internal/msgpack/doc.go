// Package msgpack is a small, allocation-free msgpack scanner and appender
// for the hot path: records travel as raw msgpack bytes (ARCHITECTURE.md, "The
// flow") and are read one key at a time, never decoded into map[string]any.
//
// Read functions take a byte slice that starts with a value and return the
// value and the rest of the slice. ErrShort means the slice ends inside the
// value (the caller may wait for more bytes); any other error means the bytes
// are not valid msgpack. Declared lengths are only compared with the bytes at
// hand, never used to allocate.
//
// Functions are pure and safe for concurrent use. Imports nothing of the
// module: every package that reads records may import it.
package msgpack
