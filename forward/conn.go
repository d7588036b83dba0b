package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// conn serves one client connection: it reads requests in order, hands
// each request's events to the consumer and writes the ack. It is used by
// one goroutine; only closing and stop are touched from others.
type conn struct {
	s       *Server
	raw     net.Conn // the accepted socket
	nc      net.Conn // raw, or the TLS connection on it
	peer    string   // remote address for logs
	closing atomic.Bool

	// Read buffer: buf[r:w] holds bytes not yet processed; the framer
	// tracks the request that starts at buf[r].
	buf     []byte
	r, w    int
	grown   bool // buf grew since it was last given back
	nextBuf int  // capacity to start with after giving buf back
	fr      framer
	dec     *decoder

	req     request
	batch   event.Batch
	lastTag string
	out     []byte // acks and handshake messages
	rbuf    []byte // records rewritten with source keys

	// Handshake state (security configured).
	established bool
	nonce       []byte
	authSalt    []byte

	// Source keys, resolved on first use.
	sourceAddr, sourceHost string
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
	if a := nc.RemoteAddr(); a != nil {
		c.peer = a.String()
	}
	return c
}

// stop asks the connection to end once the request it is processing is
// done: a blocked read returns at once.
func (c *conn) stop() {
	c.closing.Store(true)
	c.raw.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	s := c.s
	s.m.connsOpen.Inc()
	s.m.connsTotal.Inc()
	defer func() {
		c.raw.Close()
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
	}
	if c.closing.Load() {
		return
	}
	if s.auth != nil && !c.sendHelo() {
		return
	}
	c.loop()
}

// fail counts and logs why the connection or a request failed.
func (c *conn) fail(reason, msg string, err error) {
	c.s.m.errors.WithLabelValues(reason).Inc()
	if c.s.limits.allow(reason) {
		c.s.log.Warn(msg, "reason", reason, "peer", c.peer, "error", err)
	}
}

func (c *conn) loop() {
	s := c.s
	idle := s.cfg.IdleTimeout.D()
	var readErr error
	for {
		// Process every complete request already buffered.
		for c.r < c.w {
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
			if !c.handle(req) || c.closing.Load() {
				return
			}
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
			c.endOfStream(readErr)
			return
		}
		c.makeRoom()
		if idle > 0 {
			c.raw.SetReadDeadline(time.Now().Add(idle))
		}
		if c.closing.Load() { // after setting the deadline: see stop
			return
		}
		k, err := c.nc.Read(c.buf[c.w:])
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
// requests, or a shutdown, is normal and quiet.
func (c *conn) endOfStream(err error) {
	partial := c.w > c.r
	var ne net.Error
	switch {
	case c.closing.Load() || errors.Is(err, net.ErrClosed):
	case errors.As(err, &ne) && ne.Timeout():
		c.fail(reasonIdleTimeout, "closing idle connection", err)
	case !partial && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
	case errors.Is(err, io.EOF):
		c.fail(reasonReadError, "connection closed in the middle of a request", io.ErrUnexpectedEOF)
	default:
		c.fail(reasonReadError, "read failed", err)
	}
}

// handle processes one framed request. It returns false when the
// connection must be closed.
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
		if s.limits.allow("invalid") {
			s.log.Warn("skipped invalid events", "peer", c.peer, "tag", string(r.tag), "count", n,
				"bad_time", r.invalid[invalidTime], "record_not_map", r.invalid[invalidRecord],
				"bad_entry", r.invalid[invalidEntry])
		}
	}
	if len(r.events) > 0 {
		if s.cfg.SourceAddressKey != "" || s.cfg.SourceHostnameKey != "" {
			c.addSourceKeys(r.events)
		}
		c.batch.Tag = c.tag(r.tag)
		c.batch.Events = r.events
		var err error
		var release func(accepted bool)
		duplicate := false
		if s.dedup != nil && r.chunk != nil {
			duplicate, release = s.dedup.claim(r.chunk, time.Now)
		}
		if duplicate {
			s.m.duplicates.Add(float64(len(r.events)))
			if s.limits.allow("duplicate") {
				s.log.Info("resent request acked again, not ingested twice", "peer", c.peer,
					"tag", c.batch.Tag, "events", len(r.events))
			}
		} else {
			err = s.next.Consume(s.consumeCtx, &c.batch)
			if release != nil {
				release(err == nil)
			}
		}
		c.batch.Events = nil
		if err != nil {
			s.m.errors.WithLabelValues(reasonConsumeFailed).Inc()
			shutdown := c.closing.Load() || s.consumeCtx.Err() != nil || errors.Is(err, context.Canceled)
			if s.limits.allow(reasonConsumeFailed) {
				s.log.Warn("events not accepted downstream: not acked, the client will resend",
					"peer", c.peer, "tag", c.batch.Tag, "events", len(r.events), "error", err)
			}
			return !shutdown
		}
		if !duplicate {
			s.m.events.Add(float64(len(r.events)))
		}
	}
	if r.chunk != nil {
		c.out = AppendAck(c.out[:0], r.chunk)
		if !c.write(c.out) {
			return false
		}
		s.m.acks.Inc()
	}
	return true
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
		if c.s.limits.allow(reasonAuthFailed) {
			c.s.log.Warn("handshake refused, closing connection", "reason", reasonAuthFailed,
				"peer", c.peer, "hostname", ping.Hostname, "username", ping.Username, "error", err)
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
	c.rbuf = c.rbuf[:0]
	for i := range events {
		start := len(c.rbuf)
		c.rbuf = appendRecordWith(c.rbuf, events[i].Record, keys[:n], vals[:n], s.cfg.MaxDepth)
		events[i].Record = c.rbuf[start:len(c.rbuf):len(c.rbuf)]
	}
	// Earlier records may point into an older array if rbuf grew: still
	// valid; the old array is garbage once the batch is done.
	if cap(c.rbuf) > maxKeptBuffer {
		c.rbuf = nil
	}
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
