package forward

import "time"

// Batched reads. Docker's driver writes one small request per log line,
// each its own TCP segment. A reader that keeps up wakes for every line: a
// read, a read that finds nothing, a park in the poller and a wake-up —
// about a quarter of maruta's CPU in a Docker burst (issue 12's profile).
// A busy connection whose client waits for no answer therefore raises the
// socket's low-water mark (SO_RCVLOWAT, Linux): the kernel wakes the reader
// once lowatBytes are queued, and a read deadline batchWait later takes
// what is queued below the mark. A line waits at most batchWait longer in
// the kernel; nobody waits for it (no ack), and it is read before the
// connection counts as quiet or idle.
//
// A connection starts batching when two reads that returned data came
// within busyGap, and stops when a batch deadline passes (it reads what is
// queued and wakes for any byte again, until it is busy again), when its
// client asks for an ack (the ack would wait), or when the server drains
// it.
const (
	lowatBytes = 4 << 10
	batchWait  = 5 * time.Millisecond
	busyGap    = time.Millisecond
	// finalRead is how long a connection that went quiet or idle waits for
	// bytes already queued (below the mark, or just arrived) before it ends.
	finalRead = time.Millisecond
)

// readBatch is a connection's read state; only its serving goroutine uses it.
type readBatch struct {
	on       bool      // the socket's low-water mark is raised
	off      bool      // batching is not available on this connection
	prevData time.Time // when the previous read that returned data returned
	deadline time.Time // the read deadline this goroutine last set
}

// read reads into c.buf[c.w:]. It ends the connection (returns the
// deadline error) only when it has been idle for idle_timeout (0: never)
// or, draining, quiet for shutdown_quiet, and a last short read found
// nothing queued. Other deadlines (a batch's, drain's wake-up) return 0,
// nil: the loop reads again.
func (c *conn) read(idle time.Duration) (int, error) {
	b := &c.rb
	draining := c.setDeadline(idle)
	wasOn := b.on
	k, err := c.nc.Read(c.buf[c.w:])
	c.readAt = time.Now()
	if k > 0 {
		c.lastData.Store(c.readAt.UnixNano())
		if !b.on && !b.off && !draining && c.readAt.Sub(b.prevData) < busyGap && !c.owes.Load() {
			c.batchOn()
		}
		b.prevData = c.readAt
		return k, err
	}
	if !isTimeoutErr(err) {
		return k, err
	}
	if wasOn {
		c.batchOff() // bytes may be queued below the mark: the next read takes them
	}
	now := time.Now()
	switch {
	case draining || c.draining.Load():
		if now.Before(time.Unix(0, c.lastData.Load()).Add(c.s.quiet)) {
			return 0, nil // drain's wake-up
		}
	case idle > 0:
		if now.Before(c.readStart.Add(idle)) {
			return 0, nil // a batch deadline
		}
	default:
		return 0, nil // a batch deadline
	}
	// Quiet or idle: take what is queued before the connection ends.
	c.rb.deadline = now.Add(finalRead)
	c.raw.SetReadDeadline(c.rb.deadline)
	k, rerr := c.nc.Read(c.buf[c.w:])
	if k > 0 {
		c.readAt = time.Now()
		c.lastData.Store(c.readAt.UnixNano())
		return k, nil
	}
	if !isTimeoutErr(rerr) {
		return 0, rerr
	}
	if !draining && c.draining.Load() {
		return 0, nil // drain started meanwhile: it decides
	}
	return 0, err
}

// setDeadline sets the read deadline of the next read: the idle timeout,
// or, draining, the end of the quiet time, or a batch's deadline when that
// comes first. drain sets draining before its wake-up deadline, so a
// deadline set here for a draining state seen stale is set again.
func (c *conn) setDeadline(idle time.Duration) (draining bool) {
	for {
		draining = c.draining.Load()
		if c.rb.on && (draining || c.owes.Load()) {
			c.batchOff()
		}
		now := time.Now()
		c.readStart = now
		var dl time.Time
		if idle > 0 {
			dl = now.Add(idle)
		}
		if draining {
			dl = time.Unix(0, c.lastData.Load()).Add(c.s.quiet)
			if dl.Before(now) {
				dl = now // quiet already: read will look once more
			}
		}
		if c.rb.on {
			if t := now.Add(batchWait); dl.IsZero() || t.Before(dl) {
				dl = t
			}
		}
		// A deadline stays until changed: skip the call when none is
		// wanted and none was set (drain's own is seen as draining).
		if !dl.IsZero() || !c.rb.deadline.IsZero() {
			c.raw.SetReadDeadline(dl)
			c.rb.deadline = dl
		}
		if c.draining.Load() == draining {
			return draining
		}
	}
}

func (c *conn) batchOn() {
	if c.nc != c.raw || setRcvLowat(c.raw, lowatBytes) != nil {
		c.rb.off = true // TLS, a unix socket, or no SO_RCVLOWAT here
		return
	}
	c.rb.on = true
}

func (c *conn) batchOff() {
	c.rb.on = false
	if setRcvLowat(c.raw, 1) != nil {
		c.rb.off = true
	}
}
