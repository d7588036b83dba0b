package strftime

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// TestCacheMatchesFormat checks that the per-second Cache renders exactly
// what Format.Append renders.
func TestCacheMatchesFormat(t *testing.T) {
	formats := []string{"%Y-%m-%dT%H:%M:%S.%LZ", "%s", "%Y-%m-%dT%H:%M:%S.%N%z", "%L", "%3N|%6N|%9N|%N",
		"%d/%b/%Y:%H:%M:%S %z", "%a %A %j %I%p %l %e %k %u %w %F %T %D %R %C %y %%", "literal only"}
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 11, 22, 13, 5, 0, 0, time.UTC).UnixNano()
	for _, f := range formats {
		tf := Compile(f)
		tc := NewCache(&tf)
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
			want := string(tf.Append(nil, et.Std()))
			if got := string(tc.Append(nil, et)); got != want {
				t.Fatalf("format %q, time %d: cache %q, want %q", f, cur, got, want)
			}
		}
	}
}

func TestStrftime(t *testing.T) {
	tm := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	for _, c := range []struct{ f, want string }{
		{"%Y-%m-%d %H:%M:%S", "2026-03-04 05:06:07"},
		{"%Y%m%d%H", "2026030405"},
		{"%y %j %e %k %I %l %p", "26 063  4  5 05  5 AM"},
		{"%F %T %R %D", "2026-03-04 05:06:07 05:06 03/04/26"},
		{"%b %B %a %A %u %w", "Mar March Wed Wednesday 3 3"},
		{"%s %z %Z %%", "1772600767 +0000 UTC %"},
		{"%L %N %3N %6N", "891 891234567 891 891234"},
		{"%Y-%m-%dT%H:%M:%S.%LZ", "2026-03-04T05:06:07.891Z"},
		{"%Q stays", "%Q stays"},
	} {
		tf := Compile(c.f)
		if got := string(tf.Append(nil, tm)); got != c.want {
			t.Errorf("%q: %q, want %q", c.f, got, c.want)
		}
	}
}
