// Package buffer is maruta's crash-safe disk chunk buffer: one per output,
// between the router and the output's sink.
//
// Consume appends a batch's events to chunk files (one per chunk key: the
// resolved path, the time slice and the chunk_keys values) and returns once
// they are durable as the fsync mode promises; concurrent appends share one
// fsync (group commit). Chunks are sealed by size, age, the end of their time
// slice or a cap on open chunks, and flush workers hand sealed chunks to the
// sink, retrying with backoff; a chunk file is removed only after the sink
// confirmed it, and a chunk the sink refuses for good moves to a dead-letter
// folder. New recovers whatever a crash left behind. The bytes on disk are
// specified in FORMAT.md.
//
// Lifecycle: New (recovers the folder, starts nothing) → Run (flush workers,
// seal timers, fsync interval, folder polling; blocks until ctx is done) →
// Drain (from another goroutine while Run runs: seal everything and wait for
// delivery) → cancel Run's ctx. Consume may be called from any number of
// goroutines at any time between New and Run's return. Close ends Run as
// cancelling its ctx does, or releases a Buffer whose Run never started.
// These are the methods of lifecycle.Component.
//
// Durability: what each fsync mode promises, the loss window of appends
// nobody waits for (Forward requests without an ack) and how dedup marks
// are stored with the events are in FORMAT.md and in ARCHITECTURE.md,
// "Durability contract". With fsync: always, Consume with a batch that
// carries an event.Commit returns once the frames are appended and leaves
// the wait for the fsync to the caller (Commit.Wait); without one it
// returns once they are durable. With interval and off it returns once the
// frames are written.
//
// Imports: internal/… only (config, dedup, delivery, event, fsutil,
// lifecycle, msgpack). The caller sees the buffer as an event.Consumer and
// the buffer sees its sink as a delivery.Sink, so it never imports forward,
// router or sinks, and builds without the AWS SDK and parquet-go. cmd/maruta puts it
// between the router and a sink.
package buffer
