// Command maruta is a Forward-protocol log collector that writes
// Hive-partitioned Parquet to S3 or a local folder. See README.md.
//
// This package is the only one that knows every other: it loads the
// config (maruta YAML, or a fluent.conf through internal/fluentconf),
// builds the graph — Forward sources, the router, and per output a buffer
// and its sink (or a synchronous stdout / null consumer) — runs it, reloads
// it on SIGHUP or `maruta reload`, and shuts it down in stages, front to
// back (sources, router, buffers; what is not delivered by
// shutdown_timeout stays on disk). It also serves /metrics and /healthz
// and holds the other subcommands (validate, convert, athena, deadletter,
// bench, healthcheck, …), one file each; `maruta -h` lists them.
//
// Components meet only here: a source's consumer is the router (behind a
// switch that a reload swaps), the router's outputs are the buffers and
// consumers (behind switches that outlive reloads), a buffer's sink is a
// delivery.Sink from sinks. ARCHITECTURE.md has the diagram, the path of
// one event and the lifecycle.
//
// Imports: every package of the module except the test packages
// (internal/testutil, internal/crashfs, buffer/buffertest,
// sinks/sinktest), which only its tests use.
package main
