package encode

import (
	"bytes"
	"slices"
	"testing"

	"github.com/marutalog/maruta/sinks/sinktest"
)

// TestSortKeyOrder: the encoded values of a record order records as
// sort_by promises: a missing or nil value first, strings by their bytes
// (one that is a prefix of another first, a NUL inside kept in order),
// then other types.
func TestSortKeyOrder(t *testing.T) {
	k := newSortKey([]string{"c", "time"})
	if !k.byTime || !slices.Equal(k.keys, []string{"c"}) {
		t.Fatalf("sort key %+v", k)
	}
	recs := []map[string]any{ // in the order they must sort
		{"x": 1},
		{"c": nil},
		{"c": ""},
		{"c": "a"},
		{"c": "a\x00"},
		{"c": "a\x00b"},
		{"c": "a\x01"},
		{"c": "ab"},
		{"c": "b"},
		{"c": 7},
	}
	enc := make([][]byte, len(recs))
	for i, r := range recs {
		enc[i] = k.appendValues(nil, sinktest.Msgpack(t, r))
	}
	// A missing key and a nil value are the same: both first.
	if !bytes.Equal(enc[0], enc[1]) {
		t.Errorf("missing %x and nil %x differ", enc[0], enc[1])
	}
	for i := 2; i < len(recs); i++ {
		if bytes.Compare(enc[i-1], enc[i]) >= 0 {
			t.Errorf("record %d %v does not sort after record %d %v", i, recs[i], i-1, recs[i-1])
		}
	}
}
