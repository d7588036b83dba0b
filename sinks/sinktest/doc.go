// Package sinktest holds what the tests of sinks and its encoders share:
// configs of one output, chunks held in memory or streamed from a file, and
// Docker-shaped records. A new transport's tests use it too.
//
// Test code: imported by tests only, never by the binary. Imports:
// internal/… (and may import sinks/encode, sinks/layout, sinks/schema).
package sinktest
