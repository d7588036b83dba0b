package event

import (
	"context"
	"time"

	"github.com/marutalog/maruta/internal/dedup"
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
	// Commit, when not nil, lets a stage return before the events are
	// durable: a stage that makes appends durable later (the buffer with
	// fsync: always, whose group commit runs after Consume) adds what is
	// left to do to Commit and returns once the events are appended; the
	// caller acknowledges only after Commit.Wait returned nil. Stages that
	// pass the batch on (router, copy, switch) pass Commit on with it, so
	// one Commit collects the pending writes of every output the events
	// went to. When Commit is nil, Consume returns only once the events are
	// durable.
	Commit *Commit
	// Dedup, when not nil, names the chunk ids of the acked requests these
	// events came from (the Forward server sets it on batches of requests
	// with a chunk option when its dedup index persists). A stage that
	// stores events durably (the buffer) writes it into every frame it
	// writes for the batch, so a restart can rebuild the index
	// (buffer/FORMAT.md, "Dedup marks"). Stages that pass the batch on pass
	// it on; the router numbers its deliveries (below).
	Dedup *dedup.Mark
	// Delivery of Deliveries: which of the router's hand-overs of a marked
	// batch to a buffered output this is, and how many there are. With
	// Dedup set and Delivery 0 the router did not count this hand-over as
	// stored (an unbuffered output): a buffer refuses the batch.
	Delivery, Deliveries int
}

// Consumer is a pipeline stage. Consume hands a batch to the stage and
// returns once the stage has taken responsibility for every event in it:
// for a buffer that means the events are appended and (with fsync: always)
// durable — or, when b.Commit is set, appended with what makes them durable
// added to b.Commit (see Batch). A non-nil error means the caller must treat
// the whole batch as not accepted: the Forward server then does not ack, so
// the client resends; what the call may already have added to b.Commit is
// then meaningless (the caller drops it).
//
// Consume may block (backpressure) until ctx is done. It must not keep
// references to b, b.Events or any Record after it returns. Consume is safe
// for concurrent use; one Commit is used by one Consume call at a time.
type Consumer interface {
	Consume(ctx context.Context, b *Batch) error
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, b *Batch) error

// Consume calls f(ctx, b).
func (f ConsumerFunc) Consume(ctx context.Context, b *Batch) error { return f(ctx, b) }

// CommitLog is a stage's numbered log of writes that are appended but not
// yet durable: the buffer's group commit. Writes are numbered from 1 upward.
type CommitLog interface {
	// WaitCommitted returns once writes lo..hi are durable, with the error
	// of the commit that covered any of them, or ctx's error. It does not
	// need anyone else to be waiting: a log starts its commit by itself,
	// soon after a write (see buffer/FORMAT.md for how soon).
	WaitCommitted(ctx context.Context, lo, hi uint64) error
}

// Commit collects the writes of one or more Consume calls that still have
// to become durable: at most one range of write numbers per CommitLog
// (ranges of one log are merged). The zero value is empty and ready. A
// Commit is not safe for concurrent use; Reset makes it reusable.
type Commit struct {
	parts []commitPart
}

type commitPart struct {
	log    CommitLog
	lo, hi uint64
}

// Add records that writes lo..hi of log must be durable.
func (c *Commit) Add(log CommitLog, lo, hi uint64) {
	for i := range c.parts {
		if p := &c.parts[i]; p.log == log {
			p.lo, p.hi = min(p.lo, lo), max(p.hi, hi)
			return
		}
	}
	c.parts = append(c.parts, commitPart{log, lo, hi})
}

// Empty reports whether nothing waits to become durable.
func (c *Commit) Empty() bool { return len(c.parts) == 0 }

// Wait returns once every recorded write is durable, with the first error
// of their logs, or ctx's error.
func (c *Commit) Wait(ctx context.Context) error {
	var first error
	for _, p := range c.parts {
		if err := p.log.WaitCommitted(ctx, p.lo, p.hi); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Reset empties c.
func (c *Commit) Reset() {
	clear(c.parts)
	c.parts = c.parts[:0]
}
