package encode

import (
	"context"
	"errors"
	"io"

	"github.com/marutalog/maruta/internal/delivery"
)

// Encoder turns a chunk into the bytes of one object.
type Encoder interface {
	// Ext is the object name extension: parquet, jsonl, jsonl.gz.
	Ext() string
	// ContentType is the object's media type.
	ContentType() string
	// Encode writes the object for c to w. It may be called concurrently.
	// twoPass makes the Parquet encoder read the chunk twice (keys first),
	// as it must after a one-pass encode failed with ErrPlanMiss; the other
	// encoders make one pass anyway. Context errors and ErrPlanMiss come
	// back unwrapped.
	Encode(ctx context.Context, c delivery.Chunk, w io.Writer, twoPass bool) (Stats, error)
}

// ErrPlanMiss stops a one-pass Parquet encode at a key outside the file
// plan; the caller then encodes the chunk again with twoPass, into a new
// object (what was written is not a whole file).
var ErrPlanMiss = errors.New("parquet: a key outside the file plan (the chunk is encoded again in two passes)")

// Overflow reasons (label values of maruta_sink_overflow_values_total).
const (
	ReasonTypeConflict = "type_conflict" // value does not fit its column's type
	ReasonUndeclared   = "undeclared"    // declared mode: key without a column
	ReasonInvalidName  = "invalid_name"  // key cannot be a column name (empty, too long, not a string)
	ReasonColumnLimit  = "column_limit"  // schema.max_columns reached
	ReasonDuplicate    = "duplicate"     // two keys of one record map to one column
)

// OverflowReasons lists every overflow reason, for metrics that start at 0.
var OverflowReasons = []string{ReasonTypeConflict, ReasonUndeclared, ReasonInvalidName, ReasonColumnLimit, ReasonDuplicate}

// Stats is what encoding one chunk found; the sink adds it to its metrics
// once the object is delivered.
type Stats struct {
	Rows        int64
	InputBytes  int64 // msgpack bytes of the records read
	InvalidUTF8 int64
	Overflow    map[string]int64    // by reason
	Invalid     int64               // records skipped: not a msgpack map
	ColsAdded   int                 // columns added to the table schema
	Samples     map[string][]string // a few keys per overflow reason, for the log
	// Mismatches counts values of another type than their column's, by
	// column and outcome: MismatchCoerced (kept in the column: a number or
	// boolean in a string column as its JSON text, an integer in a double
	// column) or MismatchOverflow (kept as text in the overflow column).
	Mismatches map[Mismatch]int64
}

// Mismatch is a column and what became of a value of another type.
type Mismatch struct{ Column, Outcome string }

// Mismatch outcomes (label values of maruta_sink_type_mismatches_total).
const (
	MismatchCoerced  = "coerced"
	MismatchOverflow = "overflow"
)

func (s *Stats) addMismatch(column, outcome string) {
	if s.Mismatches == nil {
		s.Mismatches = map[Mismatch]int64{}
	}
	s.Mismatches[Mismatch{column, outcome}]++
}

func (s *Stats) addOverflow(reason string, key []byte) {
	if s.Overflow == nil {
		s.Overflow = map[string]int64{}
		s.Samples = map[string][]string{}
	}
	s.Overflow[reason]++
	if ks := s.Samples[reason]; len(ks) < 5 {
		k := string(key)
		for _, x := range ks {
			if x == k {
				return
			}
		}
		s.Samples[reason] = append(ks, k)
	}
}
