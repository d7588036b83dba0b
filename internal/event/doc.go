// Package event holds the types that travel between maruta's stages: a Batch
// of events sharing one tag, each event a time and a raw msgpack record, and
// the Consumer interface every stage implements.
//
// Records stay raw msgpack bytes from the socket to the chunk file (see
// ARCHITECTURE.md, "The flow"); only steps that change a record re-encode
// it.
//
// These types are the contract between the stages: forward, router and
// buffer never import one another, they import this package, and cmd/maruta
// connects them. A Commit collects the writes of every buffer a batch went
// to, so the source acks once all of them are durable (ARCHITECTURE.md,
// "Durability contract").
//
// Imports: internal/dedup only (a Batch carries a dedup.Mark).
package event
