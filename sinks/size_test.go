package sinks

import (
	"testing"

	"github.com/marutalog/maruta/internal/delivery"
)

func TestTargetFileSizeLearnsTheRatio(t *testing.T) {
	dir := t.TempDir()
	l := newLake(t, "  - type: file\n    name: j\n    format: jsonl\n    target_file_size: 4MiB\n    path: "+dir+"/${tag}/\n")
	st, ok := l.sink.(delivery.SizeTarget)
	if !ok {
		t.Fatal("the file sink does not implement SizeTarget")
	}
	// Before any delivery: the conservative estimate (JSON lines are larger
	// than the buffered msgpack).
	initial := 0.7
	if got, want := st.TargetChunkBytes(), int64(float64(4<<20)*initial); got != want {
		t.Errorf("initial chunk target %d, want %d", got, want)
	}
	// After 1 MiB+ of objects: the measured ratio of this output.
	c := dockerChunk(t, "big", l.out.File.Path, 5000, true)
	for _, e := range c.Events {
		c.ChunkInfo.Bytes += int64(len(e.Record)) // the buffer sets the payload size
	}
	l.write(t, c)
	in := float64(c.ChunkInfo.Bytes)
	out := counter(t, l.reg, "maruta_sink_bytes_total")
	if out < 1<<20 {
		t.Fatalf("only %v object bytes written; the test needs 1 MiB", out)
	}
	want := int64(float64(4<<20) * in / out)
	if got := st.TargetChunkBytes(); got < want-1 || got > want+1 {
		t.Errorf("chunk target %d after a delivery, want %d (ratio %.3f)", got, want, in/out)
	}
	if in/out > 0.9 || in/out < 0.5 {
		t.Errorf("msgpack/JSON lines ratio %.3f, expected about 0.74", in/out)
	}

	pq := newLake(t, "  - type: file\n    name: p\n    target_file_size: 128MiB\n")
	if got := pq.sink.(delivery.SizeTarget).TargetChunkBytes(); got != 6*(128<<20) {
		t.Errorf("Parquet initial chunk target %d, want 6 × 128 MiB", got)
	}
	none := newLake(t, "  - type: file\n    name: n\n")
	if got := none.sink.(delivery.SizeTarget).TargetChunkBytes(); got != 0 {
		t.Errorf("without target_file_size the chunk target is %d, want 0", got)
	}
}
