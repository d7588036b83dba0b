package loglimit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(time.Second)
		step := func(want bool, wantSup int64) {
			t.Helper()
			if ok, sup := l.Allow(); ok != want || sup != wantSup {
				t.Errorf("Allow() = %v, %d; want %v, %d", ok, sup, want, wantSup)
			}
		}
		step(true, 0) // the first line passes
		step(false, 0)
		step(false, 0)
		time.Sleep(999 * time.Millisecond)
		step(false, 0) // still within the interval
		time.Sleep(time.Millisecond)
		step(true, 3) // the interval is over: logged, with the three held back
		time.Sleep(10 * time.Second)
		step(true, 0) // after a quiet period: at once, nothing held back
	})
}

func TestLimiterConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(time.Minute)
		var mu sync.Mutex
		var logged int
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if ok, _ := l.Allow(); ok {
						mu.Lock()
						logged++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if logged != 1 {
			t.Fatalf("%d lines let through at one instant, want 1", logged)
		}
		time.Sleep(time.Minute)
		if ok, sup := l.Allow(); !ok || sup != 799 {
			t.Fatalf("after the interval: %v, %d suppressed; want true, 799", ok, sup)
		}
	})
}

func TestWarnDebug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
		l := New(time.Second)
		l.Warn(log, "bad", "n", 1)
		l.Warn(log, "bad", "n", 2)
		l.Debug(log, "not logged at info level, not counted")
		time.Sleep(time.Second)
		l.Warn(log, "bad", "n", 3)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "n=1") || strings.Contains(lines[0], "suppressed") ||
			!strings.Contains(lines[1], "level=WARN msg=bad n=3 suppressed=1") {
			t.Fatalf("log:\n%s", buf.String())
		}
	})
}

func TestKeyed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := NewKeyed(time.Second)
		if ok, _ := k.Allow("a"); !ok {
			t.Fatal("first a held back")
		}
		if ok, _ := k.Allow("a"); ok {
			t.Fatal("second a let through")
		}
		if ok, _ := k.Allow("b"); !ok {
			t.Fatal("a held back the first b")
		}
		time.Sleep(time.Second)
		if ok, sup := k.Allow("a"); !ok || sup != 1 {
			t.Fatalf("a after the interval: %v, %d", ok, sup)
		}
		for i := range maxKeys + 10 {
			k.Allow(strings.Repeat("x", i))
		}
		if n := len(k.keys); n > maxKeys {
			t.Fatalf("%d keys remembered, bound %d", n, maxKeys)
		}
	})
}
