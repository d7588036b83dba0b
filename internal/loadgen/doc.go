// Package loadgen is the load generator behind `maruta bench`: it emulates
// Docker containers logging through Docker's fluentd driver
// (fluent-logger-golang configured as the driver does) and fluentd/Fluent
// Bit-style PackedForward senders, with Docker-shaped records; it counts
// sent and acknowledged records, measures ack latency, and, when the target
// is maruta, reads maruta's own counters, CPU and memory over the run and
// the drain that follows.
//
// Run is the whole benchmark: it blocks for Config.Duration plus the drain
// and returns a Result. Records are generated before the run (a pool the
// senders cycle through), so that the load generator spends its CPU on the
// protocol, as real senders do, not on making up log lines.
//
// Imports: internal/… and forward (its Client and request encoder, to send
// as maruta agents do), and fluent-logger-golang (to send as Docker's driver
// does). The only package under internal/ that imports a top-level package:
// it is a client of the protocol, not a part of the pipeline.
package loadgen
