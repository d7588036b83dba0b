// Package buffertest holds test helpers for the buffer and for end-to-end
// tests that go through it: a Sink that records what it was given, and a
// harness that kill -9s a child process at random moments (crash tests).
//
// Test code: imported by tests only, never by the binary. Imports: buffer
// and internal/….
package buffertest
