package testutil

import (
	"testing"
	"testing/synctest"
	"time"
)

// WaitUntil checks at once, then after 1, 2, 4 … ms up to 50 ms apart, and
// returns as soon as the condition holds.
func TestWaitUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		checks := 0
		WaitUntil(t, time.Minute, "the tenth check", func() bool { checks++; return checks == 10 })
		// 1+2+4+8+16+32 ms, then 50 ms three times.
		if el := time.Since(start); checks != 10 || el != 213*time.Millisecond {
			t.Errorf("%d checks in %s, want 10 in 213ms", checks, el)
		}
	})
}
