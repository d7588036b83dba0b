package router

import (
	"os"
	"strings"
	"testing"
)

func TestPatternTable(t *testing.T) {
	data, err := os.ReadFile("testdata/patterns.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("patterns.txt:%d: want 3 tab-separated fields", i+1)
		}
		pat, tag, want := f[0], strings.ReplaceAll(f[1], `\n`, "\n"), f[2]
		n++
		if tag == "error" {
			_, err := CompilePattern(pat)
			if err == nil || err.Error() != want {
				t.Errorf("patterns.txt:%d: CompilePattern(%q) error = %v, want %q", i+1, pat, err, want)
			}
			continue
		}
		p, err := CompilePattern(pat)
		if err != nil {
			t.Errorf("patterns.txt:%d: CompilePattern(%q): %v", i+1, pat, err)
			continue
		}
		if got := p.Match(tag); got != (want == "match") {
			t.Errorf("patterns.txt:%d: %q.Match(%q) = %v, want %s", i+1, pat, tag, got, want)
		}
	}
	if n < 100 {
		t.Fatalf("only %d cases", n)
	}
}

func BenchmarkPatternMatch(b *testing.B) {
	for _, c := range []struct{ pat, tag string }{
		{"docker.shop", "docker.shop"},
		{"shop.event.**", "shop.event.purchase"},
		{"{docker,k8s}.*.** app.**", "k8s.default.api.v2"},
		{"a.**.b.**.c", "a.x.y.b.z.w.c.d"},
	} {
		p := MustCompilePattern(c.pat)
		b.Run(c.pat, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if !p.Match(c.tag) && c.pat != "a.**.b.**.c" {
					b.Fatal("no match")
				}
			}
		})
	}
}
