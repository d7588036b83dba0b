package sinks

import (
	"sync/atomic"

	"github.com/marutalog/maruta/internal/config"
)

// sizeTarget learns an output's ratio of chunk payload bytes (what the
// buffer counts against the seal size) to object bytes.
type sizeTarget struct {
	target  int64
	initial float64 // ratio until enough has been delivered
	in, out atomic.Int64
}

// ratioWarmup is how many object bytes must be delivered before the
// measured ratio replaces the initial one.
const ratioWarmup = 1 << 20

func newSizeTarget(enc *config.Encoding) *sizeTarget {
	t := &sizeTarget{target: int64(enc.TargetFileSize)}
	// Initial ratios are the low end of what BENCHMARKS.md measured on
	// Docker-shaped records (Parquet zstd 9.5–13.4, snappy 8.1; JSON lines
	// are 1.36× the msgpack, gzip ~8×): a first file comes out at or below
	// the target, not above it.
	switch {
	case enc.Format == config.FormatParquet && enc.Compression == config.CompressionNone:
		t.initial = 2
	case enc.Format == config.FormatParquet:
		t.initial = 6
	case enc.Compression == config.CompressionGzip:
		t.initial = 5
	default:
		t.initial = 0.7
	}
	return t
}

func (t *sizeTarget) observe(in, out int64) {
	if in > 0 && out > 0 {
		t.in.Add(in)
		t.out.Add(out)
	}
}

func (t *sizeTarget) ratio() float64 {
	if out := t.out.Load(); out >= ratioWarmup {
		return float64(t.in.Load()) / float64(out)
	}
	return t.initial
}

// TargetChunkBytes implements delivery.SizeTarget.
func (c *common) TargetChunkBytes() int64 {
	t := c.size
	if t == nil || t.target <= 0 {
		return 0
	}
	return max(int64(float64(t.target)*t.ratio()), 64<<10)
}
