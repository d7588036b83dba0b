package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// conn serves one client connection. Its goroutine (serve) reads requests
// in order and hands every complete request already read to the consumer
// as one batch per tag; an ack goroutine (acks, started at the first
// request with a chunk option) waits for each batch's commit and writes
// the acks in request order, while the reader goes on. Only closing,
// draining, owes, drain and closeSocket are touched from other goroutines.
type conn struct {
	s        *Server
	raw      net.Conn // the accepted socket
	nc       net.Conn // raw, or the TLS connection on it
	peer     string   // remote address for logs
	closing  atomic.Bool
	draining atomic.Bool // read on until the connection is quiet (shutdown)
	// owes: the client reads what the server writes (acks, the
	// handshake), so it notices a close (see closeSocket).
	owes        atomic.Bool
	clientEnded bool // the client closed or reset the connection
	quietEnd    bool // reading stopped because the draining connection went quiet

	// Read buffer: buf[r:w] holds bytes not yet processed; the framer
	// tracks the request that starts at buf[r].
	buf       []byte
	r, w      int
	grown     bool // buf grew since it was last given back
	nextBuf   int  // capacity to start with after giving buf back
	fr        framer
	dec       *decoder
	readAt    time.Time // when the last read returned: the arrival of what it completed
	readStart time.Time // when the last read started (idle_timeout counts from there)
	rb        readBatch // batched reads of a busy connection without acks (read.go)
	// lastData is when bytes last arrived (Unix ns; the accept at first),
	// for drain, which runs on another goroutine.
	lastData atomic.Int64

	req     request
	lastTag string
	out     []byte // handshake messages
	rbuf    []byte // records rewritten with source keys

	// The batch being gathered: requests of one tag, read but not yet
	// handed on. Records point into buf, rbuf and the decoder's buffers.
	batch     event.Batch
	events    []event.Event
	reqs      []pendingReq
	wantAck   bool         // a request of the batch waits for its commit
	newEvents int          // events of the batch that are not duplicates
	commit    event.Commit // for batches nobody waits for
	mark      dedup.Mark   // the batch's chunk ids, for a persistent dedup index
	acks      *acker       // nil until the first request with a chunk option

	// Handshake state (security configured).
	established bool
	nonce       []byte
	authSalt    []byte

	// Source keys, resolved on first use.
	sourceAddr, sourceHost string
}

// pendingReq is a request of the batch being gathered.
type pendingReq struct {
	chunk   []byte // chunk option (points into buf); nil: no ack wanted
	events  int
	dup     bool          // resent chunk id: acked again, not ingested
	release func(ok bool) // dedup claim to settle once the outcome is known
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		s:           s,
		raw:         nc,
		nc:          nc,
		fr:          newFramer(int(s.cfg.ChunkSizeLimit), s.cfg.MaxDepth),
		dec:         newDecoder(s.cfg.MaxDepth, int(s.cfg.MaxDecompressedSize)),
		established: s.auth == nil,
	}
	c.dec.budget = s.budget
	if a := nc.RemoteAddr(); a != nil {
		c.peer = a.String()
	}
	c.owes.Store(s.auth != nil)
	c.lastData.Store(time.Now().UnixNano())
	return c
}

// drain asks the connection to read on until nothing arrived for quiet,
// then end as at the end of its stream (shutdown: what a client wrote
// before it learns of the stop is still stored). A connection that has
// been quiet that long already ends at once.
func (c *conn) drain(quiet time.Duration) {
	c.draining.Store(true)
	c.raw.SetReadDeadline(time.Unix(0, c.lastData.Load()).Add(quiet))
}

func (c *conn) serve() {
	s := c.s
	s.m.connsOpen.Inc()
	s.m.connsTotal.Inc()
	defer func() {
		c.closeSocket(!c.clientEnded)
		c.dec.close()
		if c.buf != nil {
			putBuf(c.buf[:0])
			c.buf = nil
		}
		s.untrack(c)
		s.m.connsOpen.Dec()
	}()
	if s.tls != nil {
		tc := tls.Server(c.raw, s.tls)
		c.nc = tc
		c.raw.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
		if err := tc.HandshakeContext(s.consumeCtx); err != nil {
			// A peer that connects and closes or resets without a byte
			// (a load balancer's TCP health check) is normal and quiet.
			if !c.closing.Load() && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				c.fail(reasonTLSHandshake, "TLS handshake failed", err)
			}
			return
		}
		c.raw.SetDeadline(time.Time{})
		c.lastData.Store(time.Now().UnixNano()) // quiet counts from here (read)
	}
	if c.closing.Load() {
		return
	}
	if s.auth != nil && !c.sendHelo() {
		return
	}
	c.loop()
	c.flush()
	// Handing on the last batch can take a while (a full buffer, a slow
	// commit); a client that never reads (Docker's driver) may have written
	// more meanwhile, which the reset of a quiet connection would discard
	// although the client's writes succeeded. Read on while bytes are
	// queued, so only the moment between this look and the close is left.
	for c.quietEnd && !c.closing.Load() && c.raw.SetReadDeadline(time.Time{}) == nil && peerClosed(c.raw) {
		c.quietEnd = false
		c.loop()
		c.flush()
	}
	if c.acks != nil {
		c.acks.finish() // the acks of what was read are still written
	}
}

// closeSocket closes the connection's socket. When the server ends a
// connection that owes its client nothing (serverEnds: quiet at shutdown,
// idle_timeout, a bad request, Close), it resets the connection instead of
// closing it with a FIN. Such a client (Docker's driver without
// request-ack) never reads, so it would not notice a FIN: its next write
// would succeed into the closed connection and be lost to the reset that
// answers it, and only the write after that would fail and be resent. After
// a reset its next write fails at once, and the driver resends that line on
// a new connection. A connection that owes acks closes with a FIN so that
// the acks already written still arrive; its client reads them and then
// the end.
func (c *conn) closeSocket(serverEnds bool) {
	if serverEnds && !c.owes.Load() {
		if tc, ok := c.raw.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends a reset
		}
	}
	c.raw.Close()
}

// fail counts and logs why the connection or a request failed.
func (c *conn) fail(reason, msg string, err error) {
	c.s.m.errors.WithLabelValues(reason).Inc()
	if ok, sup := c.s.limits.Allow(reason); ok {
		c.s.log.Warn(msg, "reason", reason, "peer", c.peer, "error", err, "suppressed", sup)
	}
}

// loop reads and handles requests until the stream ends, a request closes
// the connection, or the server stops it. Every complete request in the
// read buffer is gathered first and handed on (flush) before the next read.
func (c *conn) loop() {
	s := c.s
	idle := s.cfg.IdleTimeout.D()
	var readErr error
	for {
		// Process every complete request already buffered.
		for c.r < c.w && !c.closing.Load() {
			n, err := c.fr.next(c.buf[c.r:c.w])
			if err != nil {
				reason := reasonInvalidMsgpack
				switch {
				case errors.Is(err, errFrameTooLarge):
					reason = reasonTooLarge
				case errors.Is(err, errFrameTooDeep):
					reason = reasonTooDeep
				}
				c.fail(reason, "closing connection", err)
				return
			}
			if n == 0 {
				break
			}
			req := c.buf[c.r : c.r+n]
			c.fr.reset()
			c.r += n
			if !c.handle(req) {
				return
			}
		}
		if !c.flush() || c.closing.Load() {
			return
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
			if c.buf != nil && readErr == nil {
				// Nothing pending: give the buffer back while idle. A
				// buffer that had to grow is taken at that size next time:
				// the client sends large requests.
				c.nextBuf = 1 << minBufShift
				if c.grown {
					c.nextBuf = cap(c.buf)
				}
				c.grown = false
				putBuf(c.buf[:0])
				c.buf = nil
			}
			c.dec.release()
		}
		if readErr != nil {
			c.clientEnded = errors.Is(readErr, io.EOF) || errors.Is(readErr, syscall.ECONNRESET)
			c.endOfStream(readErr)
			return
		}
		c.makeRoom()
		if c.closing.Load() { // Close: the socket is closed too
			return
		}
		k, err := c.read(idle)
		c.w += k
		s.m.bytes.Add(float64(k))
		readErr = err
	}
}

// makeRoom makes sure buf has free space after w: it moves the pending
// bytes to the front when that frees at least half of the buffer, and
// doubles the buffer otherwise, so a large request costs O(n) copying.
func (c *conn) makeRoom() {
	if c.buf == nil {
		c.buf = allocBuf(max(c.nextBuf, 1<<minBufShift))
		c.buf = c.buf[:cap(c.buf)]
		return
	}
	if c.w < len(c.buf) {
		return
	}
	pending := c.w - c.r
	if c.r > 0 && pending <= len(c.buf)/2 {
		copy(c.buf, c.buf[c.r:c.w])
	} else {
		// A pending request never needs more than the limit plus one read.
		n := min(2*len(c.buf), int(c.s.cfg.ChunkSizeLimit)+1<<minBufShift)
		n = max(n, pending+1)
		nb := append(allocBuf(n), c.buf[c.r:c.w]...)
		putBuf(c.buf[:0])
		c.buf = nb[:cap(nb)]
		c.grown = true
	}
	c.r, c.w = 0, pending
}

// endOfStream reports why reading stopped. A client that closes between
// requests, a shutdown, or a draining connection that went quiet, is
// normal and quiet.
func (c *conn) endOfStream(err error) {
	partial := c.w > c.r
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	switch {
	case c.closing.Load() || errors.Is(err, net.ErrClosed):
	case timeout && c.draining.Load():
		if partial {
			c.fail(reasonReadError, "shutting down: connection quiet in the middle of a request", err)
		} else {
			c.quietEnd = true
		}
	case timeout:
		c.fail(reasonIdleTimeout, "closing idle connection", err)
	case !partial && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
	case errors.Is(err, io.EOF):
		c.fail(reasonReadError, "connection closed in the middle of a request", io.ErrUnexpectedEOF)
	default:
		c.fail(reasonReadError, "read failed", err)
	}
}

// handle decodes one framed request and adds it to the batch being
// gathered (handing that batch on first when the tag changes). It returns
// false when the connection must be closed.
func (c *conn) handle(req []byte) bool {
	s := c.s
	if !c.established {
		return c.handlePing(req)
	}
	now := s.now()
	r := &c.req
	if rerr := c.dec.decode(req, now, r); rerr != nil {
		msg := "request refused"
		if rerr.fatal {
			msg = "request refused, closing connection"
		}
		c.fail(rerr.reason, msg, rerr.err)
		return !rerr.fatal
	}
	s.m.requests[r.mode].Inc()
	if r.mode == ModeHeartbeat {
		return true
	}
	if n := r.invalidCount(); n > 0 {
		for i, k := range r.invalid {
			s.m.invalid[i].Add(float64(k))
		}
		if ok, sup := s.limits.Allow("invalid"); ok {
			s.log.Warn("skipped invalid events", "peer", c.peer, "tag", string(r.tag), "count", n,
				"bad_time", r.invalid[invalidTime], "record_not_map", r.invalid[invalidRecord],
				"bad_entry", r.invalid[invalidEntry], "suppressed", sup)
		}
	}
	if len(r.events) == 0 && r.chunk == nil {
		return true
	}
	if len(c.reqs) > 0 && string(r.tag) != c.batch.Tag {
		if !c.flush() {
			return false
		}
	}
	p := pendingReq{chunk: r.chunk, events: len(r.events)}
	if r.chunk != nil && !c.owes.Load() {
		c.owes.Store(true) // the client reads its acks
	}
	if s.dedup != nil && r.chunk != nil {
		var busy <-chan struct{}
		p.dup, p.release, busy = s.dedup.TryClaim(r.chunk, s.window)
		if busy != nil {
			// Another copy is being consumed, perhaps in this batch: hand
			// the batch on, then wait for that copy's outcome.
			if !c.flush() {
				return false
			}
			p.dup, p.release = s.dedup.Claim(r.chunk, s.window)
		}
	}
	if len(c.reqs) == 0 {
		c.batch.Tag = c.tag(r.tag)
	}
	if !p.dup && len(r.events) > 0 {
		if s.cfg.SourceAddressKey != "" || s.cfg.SourceHostnameKey != "" {
			c.addSourceKeys(r.events)
		}
		c.events = append(c.events, r.events...)
		c.newEvents += len(r.events)
		if r.chunk != nil {
			c.wantAck = true
		}
	}
	c.reqs = append(c.reqs, p)
	if r.mode == ModeCompressedPackedForward {
		// Its records point into the decoder's buffer, which the next
		// request reuses.
		return c.flush()
	}
	return true
}

// flush hands the gathered batch on: one Consume for all its requests,
// then each request with a chunk option goes to the ack goroutine in
// order. A request without one is done once Consume returned: its events
// become durable with the next group commit, which nobody waits for. It
// returns false when the connection must be closed.
func (c *conn) flush() bool {
	if len(c.reqs) == 0 {
		return true
	}
	s := c.s
	var err error
	var commit *event.Commit
	if c.newEvents > 0 {
		c.batch.Events = c.events
		if c.wantAck {
			commit = getCommit()
			c.batch.Commit = commit
			if s.dedup != nil && s.dedup.Persistent() {
				c.batch.Dedup = c.markBatch()
			}
		} else {
			c.batch.Commit = &c.commit
		}
		err = s.next.Consume(s.consumeCtx, &c.batch)
		c.batch.Events, c.batch.Commit, c.batch.Dedup = nil, nil, nil
		clear(c.mark.IDs) // they point into buf
		c.mark.IDs = c.mark.IDs[:0]
		c.commit.Reset()
		if err != nil {
			s.m.errors.WithLabelValues(reasonConsumeFailed).Inc()
			if ok, sup := s.limits.Allow(reasonConsumeFailed); ok {
				s.log.Warn("events not accepted downstream: not acked, the client will resend",
					"peer", c.peer, "tag", c.batch.Tag, "requests", len(c.reqs), "events", c.newEvents, "error", err, "suppressed", sup)
			}
		} else {
			s.m.events.Add(float64(c.newEvents))
		}
	}
	for i := range c.reqs {
		p := &c.reqs[i]
		if p.dup {
			s.m.duplicates.Add(float64(p.events))
			if ok, sup := s.limits.Allow("duplicate"); ok {
				s.log.Info("resent request acked again, not ingested twice", "peer", c.peer,
					"tag", c.batch.Tag, "events", p.events, "suppressed", sup)
			}
		}
		if p.chunk == nil {
			continue
		}
		if err != nil && !p.dup {
			if p.release != nil {
				p.release(false)
			}
			continue
		}
		it := ackItem{chunk: p.chunk, commit: commit, release: p.release, arrived: c.readAt}
		if p.dup {
			it.commit = nil // acked again at once (in order)
		}
		c.ack(it)
	}
	if commit != nil {
		if err != nil {
			putCommit(commit) // no ack item refers to it
		} else {
			c.ack(ackItem{commit: commit, recycle: true})
		}
	}
	clear(c.reqs)
	c.reqs = c.reqs[:0]
	clear(c.events) // records point into buffers about to be reused
	c.events = c.events[:0]
	if cap(c.events) > maxKeptEvents {
		c.events = nil
	}
	c.rbuf = c.rbuf[:0]
	if cap(c.rbuf) > maxKeptBuffer {
		c.rbuf = nil
	}
	c.wantAck, c.newEvents = false, 0
	if err != nil {
		return !(c.closing.Load() || s.consumeCtx.Err() != nil || errors.Is(err, context.Canceled))
	}
	return true
}

// markBatch fills c.mark with the chunk ids of the batch's requests that
// are not resends (their claims are pending), so the buffers store them
// with the events (buffer/FORMAT.md, "Dedup marks"): after a crash the
// index knows which requests were stored whole.
func (c *conn) markBatch() *dedup.Mark {
	c.mark.Batch = mrand.Uint64()
	c.mark.At = time.Now().UnixMilli()
	for i := range c.reqs {
		if p := &c.reqs[i]; p.release != nil {
			c.mark.IDs = append(c.mark.IDs, p.chunk)
		}
	}
	return &c.mark
}

// tag returns the request's tag as a string, reusing the previous one when
// it is the same (a client usually sends one tag).
func (c *conn) tag(b []byte) string {
	if string(b) != c.lastTag {
		c.lastTag = string(b)
	}
	return c.lastTag
}

func (c *conn) write(b []byte) bool {
	c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(b); err != nil {
		if !c.closing.Load() {
			c.fail(reasonWriteError, "write to client failed", err)
		}
		return false
	}
	return true
}

// sendHelo starts the handshake.
func (c *conn) sendHelo() bool {
	c.nonce = make([]byte, 16)
	rand.Read(c.nonce)
	if c.s.auth.userAuth {
		c.authSalt = make([]byte, 16)
		rand.Read(c.authSalt)
	}
	c.out = AppendHelo(c.out[:0], Helo{Nonce: c.nonce, Auth: c.authSalt, Keepalive: true})
	return c.write(c.out)
}

// handlePing checks the client's PING and answers with a PONG. A failed
// check closes the connection after the PONG.
func (c *conn) handlePing(req []byte) bool {
	if len(req) == 1 && req[0] == 0xc0 {
		c.s.m.requests[ModeHeartbeat].Inc()
		return true
	}
	ping, err := ParsePing(req)
	var pong Pong
	ok := false
	if err != nil {
		pong = Pong{Reason: "invalid ping message"}
	} else {
		pong, ok = c.s.auth.check(ping, c.nonce, c.authSalt)
		if !ok {
			err = errors.New(pong.Reason)
		}
	}
	c.out = AppendPong(c.out[:0], pong)
	if !c.write(c.out) {
		return false
	}
	if !ok {
		c.s.m.errors.WithLabelValues(reasonAuthFailed).Inc()
		if ok, sup := c.s.limits.Allow(reasonAuthFailed); ok {
			c.s.log.Warn("handshake refused, closing connection", "reason", reasonAuthFailed,
				"peer", c.peer, "hostname", ping.Hostname, "username", ping.Username, "error", err, "suppressed", sup)
		}
		return false
	}
	c.established = true
	c.s.log.Debug("handshake done", "peer", c.peer, "hostname", ping.Hostname)
	return true
}

// addSourceKeys rewrites every record with the peer's address and/or host
// name added under the configured keys (replacing a key the record already
// has, as fluentd does).
func (c *conn) addSourceKeys(events []event.Event) {
	s := c.s
	if c.sourceAddr == "" {
		c.sourceAddr, c.sourceHost = "unix", s.hostname
		if ta, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok {
			c.sourceAddr = ta.IP.String()
			c.sourceHost = c.sourceAddr
			if s.hosts != nil {
				c.sourceHost = s.hosts.lookup(s.consumeCtx, c.sourceAddr)
			}
		}
	}
	var keys, vals [2]string
	n := 0
	if k := s.cfg.SourceAddressKey; k != "" {
		keys[n], vals[n] = k, c.sourceAddr
		n++
	}
	if k := s.cfg.SourceHostnameKey; k != "" {
		keys[n], vals[n] = k, c.sourceHost
		n++
	}
	for i := range events {
		start := len(c.rbuf)
		c.rbuf = appendRecordWith(c.rbuf, events[i].Record, keys[:n], vals[:n], s.cfg.MaxDepth)
		events[i].Record = c.rbuf[start:len(c.rbuf):len(c.rbuf)]
	}
	// Earlier records may point into an older array if rbuf grew: still
	// valid; the old array is garbage once the batch is handed on (flush
	// empties rbuf).
}

// appendRecordWith appends the map rec with the pairs keys[i]: vals[i] set.
func appendRecordWith(dst, rec []byte, keys, vals []string, depth int) []byte {
	n, p, _ := msgpack.ReadMapHeader(rec)
	isKey := func(k []byte) bool {
		if msgpack.Peek(k) != msgpack.Str {
			return false
		}
		v, _, _ := msgpack.ReadStr(k)
		for _, key := range keys {
			if string(v) == key {
				return true
			}
		}
		return false
	}
	kept := n
	for q, i := p, 0; i < n; i++ {
		k, rest, _ := msgpack.ReadRaw(q, depth)
		_, rest, _ = msgpack.ReadRaw(rest, depth)
		if isKey(k) {
			kept--
		}
		q = rest
	}
	dst = msgpack.AppendMapHeader(dst, kept+len(keys))
	for i := 0; i < n; i++ {
		k, rest, _ := msgpack.ReadRaw(p, depth)
		v, rest, _ := msgpack.ReadRaw(rest, depth)
		if !isKey(k) {
			dst = append(dst, k...)
			dst = append(dst, v...)
		}
		p = rest
	}
	for i, k := range keys {
		dst = msgpack.AppendString(dst, k)
		dst = msgpack.AppendString(dst, vals[i])
	}
	return dst
}
