package buffer

import (
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

func TestPayloadHeadSize(t *testing.T) {
	for _, tl := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		for _, n := range []int{1, 15, 16, 65535, 65536} {
			tag := strings.Repeat("t", tl)
			want := 1 + len(msgpack.AppendString(nil, tag)) + len(msgpack.AppendArrayHeader(nil, n))
			if got := payloadHeadSize(tag, n); got != want {
				t.Errorf("payloadHeadSize(%d, %d) = %d, want %d", tl, n, got, want)
			}
		}
	}
	// The planned size of a frame is the size appendFrame writes.
	evs := []event.Event{{Time: event.FromUnix(5, 1), Record: []byte{0x80}}, {Time: event.FromUnix(-5, 0), Record: []byte{0x81, 0xa1, 'a', 0x01}}}
	f, _ := appendFrame(nil, "tag", evs, []int32{0, 1}, nil)
	if want := frameHeadSize + payloadHeadSize("tag", 2) + entrySize(&evs[0]) + entrySize(&evs[1]); len(f) != want {
		t.Errorf("frame of %d bytes, planned %d", len(f), want)
	}
}
