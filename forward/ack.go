package forward

import (
	"sync"
	"time"

	"github.com/marutalog/maruta/internal/event"
)

// maxPendingAcks bounds the requests of one connection that are handed on
// and wait for their ack: when that many wait, the connection stops reading
// until the oldest is acked (or refused).
const maxPendingAcks = 1024

// ackItem is one request with a chunk option on its way to its ack.
type ackItem struct {
	chunk   []byte        // the chunk option, raw (owned by the item)
	commit  *event.Commit // the writes of the request's batch; nil: nothing to wait for (a duplicate)
	release func(ok bool) // dedup claim, settled once the commit's outcome is known
	arrived time.Time
	recycle bool // not a request: commit has no more items; give it back
}

// acker writes a connection's acks in request order. Its goroutine waits
// for each batch's commit (the group commit of every buffer the batch went
// to) while the connection's reader goes on; acks that are due together go
// out in one write. A write that fails closes the connection; the items
// still queued are settled without writing.
type acker struct {
	c     *conn
	items chan ackItem
	end   chan struct{}
}

// ack queues it for the ack goroutine, starting that goroutine at the first
// request that wants an ack. It blocks while maxPendingAcks requests wait.
func (c *conn) ack(it ackItem) {
	if c.acks == nil {
		c.acks = &acker{c: c, items: make(chan ackItem, maxPendingAcks), end: make(chan struct{})}
		go c.acks.run()
	}
	if !it.recycle {
		it.chunk = append([]byte(nil), it.chunk...)
	}
	c.acks.items <- it
}

// finish waits until every queued item is settled and its ack written.
func (a *acker) finish() {
	close(a.items)
	<-a.end
}

func (a *acker) run() {
	c := a.c
	s := c.s
	defer close(a.end)
	var out []byte
	var arrived []time.Time
	broken := false
	write := func() {
		if len(arrived) == 0 {
			return
		}
		if !broken {
			if c.write(out) {
				now := time.Now()
				for _, t := range arrived {
					s.m.ackLatency.Observe(now.Sub(t).Seconds())
				}
				s.m.acks.Add(float64(len(arrived)))
			} else {
				broken = true
				c.raw.Close() // the reader stops too
			}
		}
		out, arrived = out[:0], arrived[:0]
	}
	var waited *event.Commit // the commit last waited for, and its outcome
	var werr error
	for {
		var it ackItem
		var ok bool
		select {
		case it, ok = <-a.items:
		default:
			write() // nothing more is queued: send what is due
			it, ok = <-a.items
		}
		if !ok {
			write()
			return
		}
		if it.recycle {
			if waited == it.commit {
				waited = nil
			}
			putCommit(it.commit)
			continue
		}
		var err error
		if it.commit != nil {
			if it.commit != waited {
				write() // acks already due do not wait for this commit
				werr = it.commit.Wait(s.consumeCtx)
				waited = it.commit
			}
			err = werr
		}
		if it.release != nil {
			it.release(err == nil)
		}
		if err != nil {
			s.m.errors.WithLabelValues(reasonConsumeFailed).Inc()
			if ok, sup := s.limits.Allow(reasonConsumeFailed); ok {
				s.log.Warn("events not made durable downstream: not acked, the client will resend",
					"peer", c.peer, "error", err, "suppressed", sup)
			}
			continue
		}
		out = AppendAck(out, it.chunk)
		arrived = append(arrived, it.arrived)
	}
}

// Commits of batches that wait for acks are pooled: the ack goroutine gives
// each back once the last of its requests is settled.
var commitPool = sync.Pool{New: func() any { return new(event.Commit) }}

func getCommit() *event.Commit { return commitPool.Get().(*event.Commit) }

func putCommit(c *event.Commit) {
	c.Reset()
	commitPool.Put(c)
}
