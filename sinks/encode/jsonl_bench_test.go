package encode

import (
	"context"
	"testing"
)

// BenchmarkJSONLEncode encodes 100k Docker-shaped records (the JSON log
// line kept as one string) as plain JSON lines with a time key: the file
// output of `maruta bench` target 1.
func BenchmarkJSONLEncode(b *testing.B) {
	const n = 100000
	c := benchChunk(b, n, true)
	enc := NewJSONL("time", "", "", false)
	cw := &countWriter{}
	b.SetBytes(c.ChunkInfo.Bytes)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		cw.n = 0
		if _, err := enc.Encode(context.Background(), c, cw, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu0).Seconds(), "records/cpu-s")
	b.ReportMetric(float64(cw.n)/n, "line_bytes")
}
