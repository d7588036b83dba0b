package arena

import (
	"bytes"
	"fmt"
	"testing"
)

func TestCopiesStayValidUntilReset(t *testing.T) {
	a := New(64, 256)
	var got [][]byte
	var want [][]byte
	for i := range 200 {
		v := []byte(fmt.Sprintf("value-%d", i))
		if i%17 == 0 {
			v = bytes.Repeat([]byte{byte(i)}, 40) // larger than a quarter block
		}
		c := a.Copy(v)
		if cap(c) != len(c) {
			t.Fatalf("copy %d: cap %d, len %d (appending would overwrite a neighbour)", i, cap(c), len(c))
		}
		v[0] = '!' // the arena holds a copy, not the caller's bytes
		got = append(got, c)
		want = append(want, append([]byte(nil), c...))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) || got[i][0] == '!' {
			t.Fatalf("copy %d changed: %q, want %q", i, got[i], want[i])
		}
	}
	a.Reset()
	if len(a.blocks) > 256/64 {
		t.Errorf("%d blocks kept after Reset, keep allows %d", len(a.blocks), 256/64)
	}
	for _, b := range a.blocks {
		if len(b) != 0 || cap(b) != 64 {
			t.Errorf("kept block len %d cap %d", len(b), cap(b))
		}
	}
	// Kept blocks are reused: no new block for what fits in them.
	n := len(a.blocks)
	for range 4 * 64 / 8 {
		a.Copy([]byte("12345678"))
	}
	if len(a.blocks) != n {
		t.Errorf("%d blocks after refilling, want the %d kept", len(a.blocks), n)
	}
}

func TestCopyDoesNotAllocateOnceWarm(t *testing.T) {
	a := New(1<<16, 1<<20)
	v := bytes.Repeat([]byte("x"), 100)
	fill := func() {
		for range 1000 {
			a.Copy(v)
		}
		a.Reset()
	}
	fill()
	if n := testing.AllocsPerRun(10, fill); n != 0 {
		t.Errorf("%v allocations per 1000 copies after warm-up", n)
	}
}
