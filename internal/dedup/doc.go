// Package dedup is the dedup index of maruta's Forward sources: which chunk
// ids were accepted recently, so that a request a client resends because
// its ack got lost is acked again and stored once — also after maruta was
// killed or lost power (ARCHITECTURE.md, "Durability contract").
//
// While the process runs the index lives in memory: a source claims each
// request's chunk id before it hands the request on (a copy that arrives
// while another copy of the same id is being consumed waits for that
// one's outcome) and the id is remembered once the request is acked. To
// survive a restart the ids are stored where the events are: the Forward
// server puts a Mark on each batch of acked requests, the buffers write it
// into every frame of the batch, and a new process rebuilds the index from
// the marks of complete batches in the chunks on disk (buffers call Found)
// plus the record under <data_dir>/dedup, which keeps the marks of chunks
// that left their buffer (buffers call Keep before they remove one). The
// bytes and the rules are in buffer/FORMAT.md, "Dedup marks".
//
// Bounds: ids older than the window are forgotten, and at most MaxEntries
// are kept (the oldest go first), in memory and in the record. The window
// is measured on the wall clock: each mark holds its time in Unix
// milliseconds, so it counts across restarts; a clock set back keeps ids
// longer (up to MaxEntries), a clock set forward forgets them sooner.
//
// One Store serves every Forward source of a process (chunk ids are random
// per client, so sharing costs nothing); each source looks ids up with its
// own window. A Store is safe for concurrent use.
//
// Imports: internal/fsutil and internal/msgpack only. forward claims ids,
// buffer writes and reads marks, internal/event carries a Mark on a Batch,
// cmd/maruta opens the one Store of a process before its buffers (they hand
// it the marks they recover).
package dedup
