package encode

import (
	"testing"
)

// BenchmarkJSONLEncode encodes 100k Docker-shaped records (the JSON log
// line kept as one string) as plain JSON lines with a time key: the file
// output of `maruta bench` target 1.
func BenchmarkJSONLEncode(b *testing.B) {
	const n = 100000
	c := benchChunk(b, n, true)
	b.ReportAllocs()
	b.ReportMetric(float64(encodeLoop(b, NewJSONL("time", "", "", false), c, n))/n, "line_bytes")
}
