package buffer

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestBackpressureBlock stalls the sink until the buffer reaches
// total_limit_size: every appender must then block in Consume (no ack), the
// bytes on disk and the heap must stay bounded while they wait, and after the
// sink is released everything acknowledged is delivered. In a synctest
// bubble, so that "nothing is accepted while blocked" is checked after the
// buffer's timers ran and every goroutine is blocked again.
func TestBackpressureBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "buf")
		cfg := testConfig(dir)
		cfg.ChunkLimitSize = 128 << 10
		cfg.TotalLimitSize = 2 << 20
		sink := &stallSink{release: make(chan struct{})}
		h := newHarness(t, cfg, nil, func(o *Options) { o.Sink = sink }).start()

		const appenders = 16
		var accepted atomic.Int64
		var stop atomic.Bool
		// resumed is closed once accepted passes resumeAt (set at release).
		var resumeAt atomic.Int64
		resumeAt.Store(math.MaxInt64)
		resumed := make(chan struct{})
		var resumeOnce sync.Once
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		for g := 0; g < appenders; g++ {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					bt := batch("app", fmt.Sprintf("g%d-%d-", g, i), 20, time.Now())
					if err := h.b.Consume(context.Background(), bt); err != nil {
						t.Errorf("Consume: %v", err)
						return
					}
					if accepted.Add(int64(len(bt.Events))) > resumeAt.Load() {
						resumeOnce.Do(func() { close(resumed) })
					}
					mu.Lock()
					for k := 0; k < 20; k++ {
						acked[fmt.Sprintf("g%d-%d-%d", g, i, k)] = true
					}
					mu.Unlock()
				}
			})
		}
		synctest.Wait() // the buffer filled: nothing runs any more
		if n := h.b.Status().BlockedAppends; n != appenders {
			t.Fatalf("%d appenders blocked once nothing runs, want %d", n, appenders)
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		before := accepted.Load()
		time.Sleep(500 * time.Millisecond) // on the bubble's clock: every timer of the buffer runs
		synctest.Wait()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		st := h.b.Status()
		if after := accepted.Load(); after != before {
			t.Errorf("%d events accepted while the buffer was full and the sink stalled", after-before)
		}
		// Frames never exceed the limit; the header of a chunk opened at the
		// limit may (a few hundred bytes).
		if st.TotalBytes > int64(cfg.TotalLimitSize)+1024 {
			t.Errorf("buffer holds %d bytes, above total_limit_size %d", st.TotalBytes, cfg.TotalLimitSize)
		}
		if st.BlockedAppends != appenders {
			t.Errorf("blocked appends %d, want %d", st.BlockedAppends, appenders)
		}
		if m1.HeapAlloc > 32<<20 || m1.HeapAlloc > m0.HeapAlloc+4<<20 {
			t.Errorf("heap %d bytes while blocked (was %d when the buffer filled)", m1.HeapAlloc, m0.HeapAlloc)
		}
		t.Logf("blocked: %d appenders, %d events acked, buffer %d of %d bytes in %d chunks, heap %.1f MiB → %.1f MiB",
			appenders, before, st.TotalBytes, cfg.TotalLimitSize, st.OpenChunks+st.QueuedChunks,
			float64(m0.HeapAlloc)/(1<<20), float64(m1.HeapAlloc)/(1<<20))

		resumeAt.Store(before + int64(cfg.TotalLimitSize)/2000)
		close(sink.release)
		<-resumed // appends resumed
		stop.Store(true)
		wg.Wait()
		h.drain()
		got := sink.IDs()
		missing := 0
		for id := range acked {
			if got[id] == 0 {
				missing++
			}
		}
		if missing > 0 || int64(len(sink.Deliveries())) != accepted.Load() {
			t.Errorf("acked %d, delivered %d, %d acked events missing", accepted.Load(), len(sink.Deliveries()), missing)
		}
		if metricValue(t, h.b.m.dropEvents) != 0 || metricValue(t, h.b.m.rejected) != 0 {
			t.Error("block dropped or rejected events")
		}
	})
}
