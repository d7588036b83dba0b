// Package forward speaks fluentd's Forward protocol v1, the protocol of
// Docker's fluentd log driver, fluentd and Fluent Bit out_forward, and maruta
// agents.
//
// Server receives it: Message [tag, time, record, option?], Forward
// [tag, [[time, record], …], option?], PackedForward [tag, entries, option?]
// with entries as bin or str, and CompressedPackedForward (gzip with any
// number of members, zstd; detected from the magic bytes when the
// compressed option is absent). Times are EventTime (ext 0, fixext8 or
// ext8), integer or float seconds, msgpack timestamps (ext -1), or Fluent
// Bit's [time, {metadata}]; 0 and nil mean "now".
//
// Records stay raw msgpack from the socket to the consumer: framing walks
// each byte once, however the stream is split into reads, and decoding a
// PackedForward request allocates nothing per record.
//
// How requests flow: a connection reads, frames every complete request in
// its read buffer, and hands them to the consumer together — one Consume
// per run of requests with the same tag, with an event.Commit — then reads
// on. Nothing waits for a disk flush on the reading side. A busy
// connection without acks (Docker's driver: one small segment per line)
// reads in batches: its socket's low-water mark is raised to 4 KiB, so the
// reader wakes once that much is queued or 5 ms passed, not once per line
// (read.go); a connection reads once more before it ends as quiet or idle. A request with a
// chunk option is acked once its batch's Commit is durable (the group commit
// of every buffer it went to): an ack goroutine per connection waits for
// that and writes the acks in request order, several in one write, while the
// reader goes on; at most 1024 requests of a connection wait for their ack
// (then it stops reading). A request without a chunk option (Docker's
// default) is done once Consume returned: its events reach the disk with the
// next group commit, at most about 10 ms later (buffer/FORMAT.md); a process
// crash or power loss before that loses them, and a commit that fails is
// only logged and counted by the buffer — the client asked for no answer
// and cannot learn of it.
//
// On shutdown the server first stops the kernel from establishing new
// connections (a socket filter on the TCP listener drops every packet, so a
// client's SYN goes unanswered and is retried — to the next process on the
// port, or refused once the listener closes; a unix socket's file is
// removed): a connection established after the server's last Accept would
// be reset when the listener closes, and what its client wrote into it at
// once would be lost although the write succeeded. It then takes the
// connections already established and reads every open connection on until
// nothing arrived on it for shutdown_quiet (1s), stores what it read and
// writes the acks due. A connection whose client never asked for an ack
// (Docker's driver without request-ack never reads) is then ended with a
// TCP reset instead of a FIN, as on idle_timeout and on a bad request: after
// a FIN such a client's next write succeeds into the closed connection and
// is lost, and only the one after fails; after a reset its next write fails
// and the client resends it on a new connection. (The connection of a
// container that has not printed yet is quiet at once: with a FIN, the
// container's first line was lost.) A connection with acks ends with a FIN
// after its acks, which its client reads.
//
// What happens to a request:
//
//   - well-formed, all events valid: handed to the consumer; acked ({"ack":
//     chunk}, chunk echoed byte for byte) once the consumer returned nil and
//     the events are durable.
//   - a resend: its chunk id was accepted within the source's dedup window
//     (on by default; the index survives restarts, see internal/dedup):
//     acked again in order, not handed on, counted as duplicate events. A
//     copy that arrives while the first is still being stored waits for
//     its outcome. With a persistent index, each batch of requests with a
//     chunk option carries their ids (event.Batch.Dedup) for the buffers
//     to store with the events.
//   - well-formed, some events invalid (bad time, record not a map, entry not
//     [time, record]): the valid ones are handed on and the request is
//     acked; the others are counted by reason and logged.
//   - not decodable whole (not a request array, tag not a str, option not a
//     map, bad gzip/zstd, packed entries cut short): refused whole, nothing
//     ingested, no ack; the connection stays open.
//   - over a limit (chunk_size_limit, max_decompressed_size, max_depth) or
//     not msgpack at all: refused and the connection is closed. So is a
//     compressed request that needs memory the other connections hold
//     (max_decompressed_size is also their shared budget) and gets none
//     back within 5 s (decompress_budget; see inflate.go).
//   - the consumer returned an error, or the commit failed: no ack (the
//     client resends); the connection stays open unless the server is
//     shutting down. Requests read together share the consumer's answer:
//     a batch refused (a full buffer with overflow_action throw) refuses
//     each of its requests.
//
// With security configured, the HELO/PING/PONG handshake of fluentd's
// <security> section comes first; SharedKeyDigest, PasswordDigest and the
// Append*/Parse* message functions are shared with the client side.
//
// Client is the sending side (the forward output and the load generator
// use it): Dial connects over TCP, TLS or a unix socket and runs the
// handshake; Packer and RequestEncoder build PackedForward requests
// (optionally gzip) without per-event allocations; Send, ReadAck and
// SendAcked write requests and read their acks with timeouts; Probe,
// ProbeTCP and ProbeUDP check a server's health.
//
// Lifecycle (lifecycle.Component): NewServer checks the config and binds
// the listeners → Run serves until its context is done or Drain is called,
// then shuts down as above (Drain waits for that shutdown, up to its own
// deadline) → Close stops at once (also without Run). One goroutine reads each connection and a
// second writes its acks; several connections call the consumer's Consume
// concurrently (see Server).
//
// Imports: internal/… only (config, dedup, event, lifecycle, msgpack). The
// server knows what follows it only as an event.Consumer, so it never
// imports router, buffer or sinks; sinks imports this package for the
// Client.
// ARCHITECTURE.md follows one request through this package into the
// buffers.
package forward
