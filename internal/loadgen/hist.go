package loadgen

import (
	"math/bits"
	"time"
)

// Histogram counts durations in log-linear buckets: exact below 64 ns, then
// 32 buckets per power of two (at most ~3% relative error) up to the
// largest int64. Recording is a few instructions and allocation-free. A
// Histogram is not safe for concurrent use: give each sender its own and
// Merge them.
type Histogram struct {
	counts [64 + 58*32]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

func bucketOf(v uint64) int {
	if v < 64 {
		return int(v)
	}
	shift := bits.Len64(v) - 6
	return 64 + (shift-1)*32 + int(v>>uint(shift)) - 32
}

// bucketMid is a representative value of bucket i: its middle.
func bucketMid(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	shift := (i-64)/32 + 1
	top := uint64((i-64)%32 + 32)
	lo := top << uint(shift)
	return lo + (uint64(1)<<uint(shift))/2
}

// Record adds one duration (negative counts as zero).
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded duration.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the mean recorded duration.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile (0 < q <= 1): the smallest recorded
// duration that at least q of all are at or below, to the bucket's
// precision (never above Max).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), h.max)
		}
	}
	return h.max
}
