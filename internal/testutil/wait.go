package testutil

import (
	"testing"
	"time"
)

// WaitUntil checks cond until it holds and fails the test (naming what it
// waited for) when it still does not after timeout. It checks at once,
// then after 1 ms, twice as long each time up to 50 ms, so a condition
// that holds soon is seen soon and a slow one costs little CPU. cond runs
// on the calling goroutine; it must not block.
//
// Use it for a condition reached through real I/O (a socket, a process, a
// file). For goroutine-and-timer logic use testing/synctest instead, which
// also proves that something does NOT happen; never a fixed sleep.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}
