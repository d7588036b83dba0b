package sinks

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// TestTimeCacheMatchesFormat checks that the per-second cache of the jsonl
// encoder renders exactly what timeFormat.append renders.
func TestTimeCacheMatchesFormat(t *testing.T) {
	formats := []string{DefaultJSONTimeFormat, "%s", "%Y-%m-%dT%H:%M:%S.%N%z", "%L", "%3N|%6N|%9N|%N",
		"%d/%b/%Y:%H:%M:%S %z", "%a %A %j %I%p %l %e %k %u %w %F %T %D %R %C %y %%", "literal only"}
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 11, 22, 13, 5, 0, 0, time.UTC).UnixNano()
	for _, f := range formats {
		tf := compileTimeFormat(f)
		tc := timeCache{f: &tf}
		cur := base
		for i := 0; i < 5000; i++ {
			switch r.IntN(4) {
			case 0: // same second
				cur = cur - cur%1e9 + r.Int64N(1e9)
			case 1: // next seconds
				cur += r.Int64N(3e9)
			case 2: // back in time
				cur -= r.Int64N(5e9)
			default: // anywhere, before 1970 too
				cur = r.Int64N(4e18) - 1e18
			}
			et := event.Time(cur)
			want := string(tf.append(nil, et.Std()))
			if got := string(tc.append(nil, et)); got != want {
				t.Fatalf("format %q, time %d: cache %q, want %q", f, cur, got, want)
			}
		}
	}
}
