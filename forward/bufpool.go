package forward

import (
	"math/bits"
	"sync"
)

// Read and decompression buffers come from size-classed pools (powers of
// two from 16 KiB): a connection gives its buffer back whenever it has no
// partial request left, so thousands of idle connections (Docker keeps one
// per container) pin no memory, and the buffers of large requests (fluentd
// sends megabytes per chunk) are reused instead of reallocated.
const (
	minBufShift = 14 // 16 KiB
	maxBufShift = 30 // 1 GiB; larger buffers are not pooled
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of length 0 and capacity at least n.
func getBuf(n int) []byte {
	c := bufClass(n)
	if c >= len(bufPools) {
		return make([]byte, 0, n)
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 1<<(c+minBufShift))
}

// putBuf gives b back; the caller must not use it afterwards.
func putBuf(b []byte) {
	c := cap(b)
	if c < 1<<minBufShift || c&(c-1) != 0 {
		return // not one of ours
	}
	k := bits.Len(uint(c)) - 1 - minBufShift
	if k >= len(bufPools) {
		return
	}
	b = b[:0]
	bufPools[k].Put(&b)
}

// allocBuf returns an empty buffer with capacity of at least n: from the
// pool when n is a power of two, else allocated exactly, so that a limit
// such as 64 MiB + 16 KiB does not cost 128 MiB.
func allocBuf(n int) []byte {
	if n&(n-1) == 0 {
		return getBuf(n)
	}
	return make([]byte, 0, n)
}
