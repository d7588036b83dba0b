package buffer

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// Chunk ids (FORMAT.md, "Chunk id"): 11 base-36 digits of microseconds since
// the epoch, then 5 random base-36 digits.
const (
	idTimeLen = 11
	idRandLen = 5
	idLen     = idTimeLen + idRandLen
)

var idGen struct {
	sync.Mutex
	last int64 // microseconds of the last id made by this process
}

// newID returns a chunk id for a chunk created at now. Ids made by one
// process are strictly increasing, whatever the clock does.
func newID(now time.Time) string {
	us := now.UnixMicro()
	idGen.Lock()
	if us <= idGen.last {
		us = idGen.last + 1
	}
	idGen.last = us
	idGen.Unlock()
	var b [idLen]byte
	putBase36(b[:idTimeLen], uint64(us))
	putBase36(b[idTimeLen:], rand.Uint64N(36*36*36*36*36))
	return string(b[:])
}

// observeID moves the generator past id, so ids made later sort after it.
func observeID(id string) {
	us, err := strconv.ParseInt(id[:idTimeLen], 36, 64)
	if err != nil {
		return
	}
	idGen.Lock()
	if us > idGen.last {
		idGen.last = us
	}
	idGen.Unlock()
}

func putBase36(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[v%36]
		v /= 36
	}
}

// validID reports whether s looks like a chunk id.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// idTime returns the creation time encoded in a valid id.
func idTime(id string) time.Time {
	us, _ := strconv.ParseInt(id[:idTimeLen], 36, 64)
	return time.UnixMicro(us).UTC()
}
