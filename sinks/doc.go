// Package sinks delivers sealed buffer chunks to their destination: S3, a
// local folder, another Forward server, stdout or nowhere. The contract
// with the buffer (delivery.Sink, delivery.Chunk, delivery.Permanent) lives
// in internal/delivery, so the buffer does not import this package; what a
// chunk becomes lives beside it: sinks/encode (Parquet, JSON lines),
// sinks/schema (table schemas), sinks/layout (paths, object keys, Athena
// partitions). This package holds the transports.
//
// New builds the sink of a file, s3, forward, cloudwatch_logs, syslog or
// treasure_data output; NewStdout and NewNull the synchronous consumers of
// stdout and null outputs.
//
// # Adding a transport
//
// A transport that stores each chunk as one object (an object store) is an
// objectStore: a put(ctx, *object) that stores the staged, encoded file
// under its key and returns nil only once the destination confirmed it. A
// retry of the same chunk must not make a second copy: overwrite the key, or
// use a conditional put and recognise the object already there. put counts
// its errors in metrics.errors (kindThrottle, kindServer, kindNetwork,
// kindPermanent, …) and wraps those retrying cannot fix in
// delivery.Permanent. objectSink does the rest (keys, staging under
// <data_dir>/tmp/<output>/, encoding, the Parquet plan's two-pass retry,
// metrics, size targets). Build it in a newXSink next to newS3Sink (s3.go is
// the model; file.go also stages next to its target, a stager) and add one
// line for its config type to the table kinds (sinks.go). Honour
// Options.Check (validate builds the sink to check it: create, remove,
// start and dial nothing) and return what the sink refuses in the config
// wrapped in config.AtKey, so validate names the key.
//
// A transport that sends events rather than objects (a log service, syslog,
// a Forward server) implements delivery.Sink itself, as Forward does: Write
// scans the chunk (delivery.Chunk.Scan streams it from disk), sends it in
// requests within the destination's limits, and returns nil only when every
// request was acknowledged. Make a resend of the same chunk recognisable to
// the destination where it can dedup (Forward derives each request's chunk
// id from the chunk id), and remember acked parts across retries if it
// cannot (eventProgress, progress.go, as cloudwatch.go does). Register the
// common sink metrics with newSinkMetrics and classify errors once, as
// s3.go's classifyS3Error does. cloudwatch.go, syslog.go and
// treasuredata.go are the models; events.go holds what they share
// (destination templates rendered per event, cutting long messages).
//
// Tests use real servers where one runs here (versitygw, maruta's own
// Forward server) and sinks/sinktest for chunks and records.
//
// # Lifecycle and imports
//
// New builds a sink and checks what only the sink can (templates, schema,
// TLS files, the AWS configuration); no data is sent before the first
// Write (the forward output starts its heartbeats at once). Write is called
// by the buffer's flush workers concurrently; Close after the last Write
// returned.
//
// Imports: internal/…, forward (the Client of the forward output),
// sinks/encode, sinks/layout and sinks/schema; the AWS SDK for s3 and
// cloudwatch_logs. Nothing imports sinks but cmd/maruta (and tests): the
// buffer knows a sink as a delivery.Sink. ARCHITECTURE.md follows a chunk
// from the buffer through objectSink to S3 and the local lake.
package sinks
