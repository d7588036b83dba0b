package buffer

import (
	"slices"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	h := newHarness(t, testConfig(t.TempDir()+"/buf"), nil, nil).start()
	h.consume("app.web", "a", 10, time.Now())
	h.consume("app.web", "b", 5, time.Now())
	h.drain()
	got := sortedIDs(h.sink.Deliveries())
	want := append(wantIDs("a", 10), wantIDs("b", 5)...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if f := files(t, h.dir); len(f) != 0 {
		t.Fatalf("files left: %v", f)
	}
}
