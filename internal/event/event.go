// Package event holds the types that travel between maruta's stages: a Batch
// of events sharing one tag, each event a time and a raw msgpack record, and
// the Consumer interface every stage implements.
//
// Records stay raw msgpack bytes from the socket to the chunk file (see
// DESIGN.md, "Events"); only steps that change a record re-encode it.
package event

import (
	"context"
	"time"
)

// Time is an event time in nanoseconds since the Unix epoch, UTC. It keeps
// the nanoseconds of Forward's EventTime until the Parquet boundary.
type Time int64

// FromUnix builds a Time from seconds and nanoseconds.
func FromUnix(sec, nsec int64) Time { return Time(sec*1e9 + nsec) }

// Unix returns the seconds and nanoseconds of t.
func (t Time) Unix() (sec, nsec int64) {
	sec, nsec = int64(t)/1e9, int64(t)%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	return sec, nsec
}

// UnixMilli returns t in milliseconds, rounded toward negative infinity.
func (t Time) UnixMilli() int64 {
	ms := int64(t) / 1e6
	if int64(t)%1e6 < 0 {
		ms--
	}
	return ms
}

// Std returns t as a time.Time in UTC.
func (t Time) Std() time.Time { return time.Unix(0, int64(t)).UTC() }

// Now returns the current time.
func Now() Time { return Time(time.Now().UnixNano()) }

// Event is one log event.
type Event struct {
	Time Time
	// Record is one msgpack map, raw. It may point into a buffer owned by the
	// caller of Consume; a consumer that keeps it past Consume must copy it.
	Record []byte
}

// Batch is a group of events with one tag, handed from stage to stage.
type Batch struct {
	Tag    string
	Events []Event
}

// Consumer is a pipeline stage. Consume hands a batch to the stage and
// returns once the stage has taken responsibility for every event in it:
// for a buffer that means the events are appended and (with fsync: always)
// durable. A non-nil error means the caller must treat the whole batch as not
// accepted: the Forward server then does not ack, so the client resends.
//
// Consume may block (backpressure) until ctx is done. It must not keep
// references to b, b.Events or any Record after it returns. Consume is safe
// for concurrent use.
type Consumer interface {
	Consume(ctx context.Context, b *Batch) error
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, b *Batch) error

// Consume calls f(ctx, b).
func (f ConsumerFunc) Consume(ctx context.Context, b *Batch) error { return f(ctx, b) }
