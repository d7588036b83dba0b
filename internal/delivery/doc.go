// Package delivery is the contract between the buffer and the sinks: a
// sealed Chunk, the Sink that delivers it, and how a delivery error is
// classified (Permanent or retryable). It is a leaf: the buffer, the sinks
// and their tests import it, and it imports only internal/event, so the
// buffer does not depend on any sink's libraries (the AWS SDK, parquet-go).
//
// A Sink receives whole chunks from the buffer's flush workers. It either
// delivers a chunk completely and returns nil (the buffer then deletes the
// chunk file), or returns an error: a retryable one makes the buffer try again
// later with backoff, a Permanent one moves the chunk to the dead-letter
// folder at once.
//
// Sink.Write is called by several flush workers at once; Close only after
// the last Write returned. See ARCHITECTURE.md, "One event, from socket to
// object", for where a chunk goes from here.
package delivery
