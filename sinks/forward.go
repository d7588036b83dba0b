package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// Forward is the sink of a forward output: it delivers buffer chunks to
// Forward servers (maruta aggregators, fluentd, Fluent Bit) with acks. See
// config.ForwardOutput for the behaviour users see.
//
// How a chunk travels: its events are grouped by tag into PackedForward
// requests of at most max_request_size entry bytes (in scan order; a group
// is sent when it is full, when the groups held in memory pass twice
// max_request_size — the largest goes — and at the end in first-seen
// order), so the split is a pure function of the chunk's content and the
// configuration. Part i's chunk option is derived from node, output, chunk
// id, max_request_size and i, so a resend carries the same id and a server
// with a dedup window stores it once. Every request is acked before the
// next is sent; Write returns nil only when all were acked. Parts acked
// before a failure, and a part held for its server, are remembered (in
// memory and under <data_dir>/forward/<output>/, so a restart keeps them)
// and not sent again, or not elsewhere, when the buffer retries the chunk.
//
// A part is in doubt when it was written whole to a server and no ack came
// back: the ack timed out (the server may be paused) or the connection
// broke (the server may have crashed after it stored the part, before it
// acked). Only that server's dedup index knows whether it stored the part,
// so the part is held for it: resent only there (same chunk option: acked
// again without being stored twice) for ack_timeout_hold or lost_ack_hold,
// and sent elsewhere only after that. A part that was not written whole
// cannot have been stored and fails over at once.
//
// Server choice, health and connections: see forward_servers.go. Errors
// are retryable except a corrupt chunk (Permanent from Scan): a refused
// handshake is retried too, since it is a property of the server's
// configuration (a key being rotated), not of the chunk.
//
// New starts one heartbeat goroutine and probes; Close stops them and
// closes the connections. Write is safe for concurrent use; Close must not
// be called while Writes run.
type Forward struct {
	name, node string
	cfg        *config.ForwardOutput
	servers    []*fwdServer
	log        *slog.Logger
	m          *fwdMetrics
	sm         *sinkMetrics

	requireAck     bool
	keepalive      bool
	maxAge         time.Duration
	maxRequest     int
	ackTimeout     time.Duration
	connectTimeout time.Duration
	hbInterval     time.Duration
	hold           time.Duration // ack_timeout_hold
	lostHold       time.Duration // lost_ack_hold

	progress progressMap
	writers  sync.Pool // *fwdWriter

	probeCtx  context.Context
	cancel    context.CancelFunc
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ delivery.Sink = (*Forward)(nil)

// splitVersion is part of every derived chunk id: bump it when the way a
// chunk is split into requests changes, so that a resend split differently
// never reuses an id the server remembers for other content.
const splitVersion = 1

// maxGroups bounds the tags whose requests are built at once.
const maxGroups = 256

// NewForward builds the sink of a forward output and starts its health
// checks. Nothing is dialed before the first Write or probe.
func NewForward(opts Options) (*Forward, error) {
	out := opts.Output
	if out == nil || out.Forward == nil {
		return nil, errors.New("new forward sink: not a forward output")
	}
	cfg := out.Forward
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("output %s: no servers", out.Name)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	node := opts.Node
	if node == "" {
		node = config.DefaultNode()
	}
	f := &Forward{
		name:           out.Name,
		node:           node,
		cfg:            cfg,
		log:            log.With("component", "sink", "output", out.Name),
		m:              newFwdMetrics(opts.Registerer, out.Name),
		sm:             newSinkMetrics(opts.Registerer, out.Name),
		requireAck:     cfg.RequireAckResponse == nil || *cfg.RequireAckResponse,
		keepalive:      cfg.Keepalive == nil || *cfg.Keepalive,
		maxAge:         cfg.KeepaliveTimeout.D(),
		maxRequest:     int(cfg.MaxRequestSize),
		ackTimeout:     cfg.AckResponseTimeout.D(),
		connectTimeout: cfg.ConnectTimeout.D(),
		hbInterval:     cfg.HeartbeatInterval.D(),
		stop:           make(chan struct{}),
	}
	if cfg.AckTimeoutHold != nil { // set with the other defaults at load
		f.hold = cfg.AckTimeoutHold.D()
	}
	f.lostHold = config.DefaultLostAckHold
	if cfg.LostAckHold != nil {
		f.lostHold = cfg.LostAckHold.D()
	}
	if _, err := forward.NewRequestEncoder(cfg.Compress); err != nil {
		return nil, fmt.Errorf("output %s: %w", out.Name, err)
	}
	copts := forward.ClientOptions{
		ConnectTimeout: f.connectTimeout,
		SendTimeout:    cfg.SendTimeout.D(),
		AckTimeout:     f.ackTimeout,
	}
	if cfg.TLS != nil {
		tc, err := forward.ClientTLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", out.Name, config.AtKey("tls", err))
		}
		copts.TLS = tc
	}
	if sec := cfg.Security; sec != nil {
		copts.Security = &forward.ClientSecurity{SharedKey: sec.SharedKey, SelfHostname: sec.SelfHostname,
			Username: sec.Username, Password: sec.Password}
	}
	for _, sv := range cfg.Servers {
		f.servers = append(f.servers, newFwdServer(sv, copts, f.m))
	}
	for _, k := range []string{kindNetwork, kindPermanent, kindOther} {
		f.sm.errors.WithLabelValues(k)
	}
	f.writers.New = func() any {
		enc, _ := forward.NewRequestEncoder(cfg.Compress)
		return &fwdWriter{enc: enc, groups: map[string]*fwdGroup{}}
	}
	f.probeCtx, f.cancel = context.WithCancel(context.Background())
	if opts.Check {
		f.progress.init("", out.Name, f.maxRequest, f.servers, f.log)
		return f, nil
	}
	f.progress.init(opts.DataDir, out.Name, f.maxRequest, f.servers, f.log)
	// Down servers are probed whatever the heartbeat type.
	f.wg.Go(f.heartbeat)
	return f, nil
}

// Close stops the health checks and closes idle connections. Safe to call
// more than once.
func (f *Forward) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		f.cancel()
		f.wg.Wait()
		for _, s := range f.servers {
			s.closeIdle()
		}
	})
	return nil
}

// partID is the chunk option of part i of buffer chunk id: 18 bytes of a
// SHA-256 in base64, 24 characters like fluentd's chunk ids.
func (f *Forward) partID(id string, part int) string {
	h := sha256.New()
	var num [8]byte
	for _, s := range []string{f.node, f.name, id} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	binary.BigEndian.PutUint64(num[:], uint64(f.maxRequest))
	h.Write(num[:])
	binary.BigEndian.PutUint64(num[:], uint64(part)<<8|splitVersion)
	h.Write(num[:])
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(h.Sum(sum[:0])[:18])
}

// Write delivers a chunk: see Forward.
func (f *Forward) Write(ctx context.Context, c delivery.Chunk) error {
	start := time.Now()
	info := c.Info()
	w := f.writers.Get().(*fwdWriter)
	pr := f.progress.get(info.ID)
	d := &fwdDelivery{f: f, ctx: ctx, w: w, id: info.ID, ch: chunkHash(info.ID), skip: pr.acked, tried: pr.tried}
	d.home = home(f.servers, d.ch)
	if pr.held != nil {
		d.held, d.heldSince, d.holdFor = pr.held, pr.heldSince, pr.holdFor
		if d.holdFor <= 0 {
			d.holdFor = f.hold // written by a version that held after ack timeouts only
		}
	}
	err := c.Scan(d.add)
	if err == nil {
		err = d.flushAll()
	}
	d.release()
	w.reset()
	f.writers.Put(w)
	f.sm.duration.Observe(since(start))
	if err != nil {
		switch {
		case delivery.IsPermanent(err):
			f.progress.forget(info.ID)
			f.sm.errors.WithLabelValues(kindPermanent).Inc()
		case ctx.Err() != nil:
			f.progress.set(info.ID, d.progress())
		default:
			f.progress.set(info.ID, d.progress())
			f.sm.errors.WithLabelValues(kindNetwork).Inc()
		}
		return fmt.Errorf("forward chunk %s: %w", info.ID, err)
	}
	f.progress.forget(info.ID)
	f.sm.rows.Add(float64(d.events))
	f.sm.inputBytes.Add(float64(info.Bytes))
	f.log.Debug("chunk delivered", "chunk", info.ID, "requests", d.next, "skipped", min(d.skip, d.next), "events", d.events)
	return nil
}

// fwdWriter holds what one Write builds requests with; pooled.
type fwdWriter struct {
	enc      *forward.RequestEncoder
	groups   map[string]*fwdGroup
	order    []*fwdGroup // groups with events, first seen first
	free     []*forward.Packer
	buffered int // entry bytes held in groups
}

type fwdGroup struct {
	p *forward.Packer
}

// reset empties w for the next Write, keeping a few small packers.
func (w *fwdWriter) reset() {
	for _, g := range w.order {
		w.recycle(g.p)
	}
	clear(w.groups)
	w.order = w.order[:0]
	w.buffered = 0
}

func (w *fwdWriter) recycle(p *forward.Packer) {
	if len(w.free) < 16 && cap(p.Entries()) <= 1<<20 || len(w.free) < 2 {
		w.free = append(w.free, p)
	}
}

func (w *fwdWriter) packer(tag string) *forward.Packer {
	var p *forward.Packer
	if n := len(w.free); n > 0 {
		p, w.free = w.free[n-1], w.free[:n-1]
	} else {
		p = new(forward.Packer)
	}
	p.Reset(tag)
	return p
}

// fwdDelivery is one Write in progress.
type fwdDelivery struct {
	f     *Forward
	ctx   context.Context
	w     *fwdWriter
	id    string
	ch    uint64
	home  *fwdServer
	skip  int // parts acked by an earlier attempt
	tried int // parts sent by earlier attempts
	next  int // index of the next part

	sentParts  int // parts 0..sentParts-1 were written at least once (this attempt)
	events     int // events delivered (skipped parts included)
	ackedParts int // parts 0..ackedParts-1 are acked (or were skipped)

	// The connection parts go over, kept across parts.
	cur    *fwdServer
	cl     *forward.Client
	opened time.Time
	fresh  bool
	failed []*fwdServer // servers that failed during this Write

	// held is the server the next part is in doubt on (its ack timed out
	// or its connection broke after the part was written whole, in this
	// attempt or an earlier one, since heldSince): the part goes to it
	// again, not elsewhere, until holdFor has passed (see holding).
	held      *fwdServer
	heldSince time.Time
	holdFor   time.Duration
}

// holding reports whether the next part still waits for d.held: for
// holdFor since heldSince, or at most lost_ack_hold while the server
// refuses connections (it is gone, not paused: only a restart brings it
// back).
func (d *fwdDelivery) holding() bool {
	if d.held == nil {
		return false
	}
	limit := d.holdFor
	if d.held.refusing() {
		limit = min(limit, d.f.lostHold)
	}
	return time.Since(d.heldSince) < limit
}

// hold keeps the part for s after an in-doubt failure; holdFor only
// grows while the part stays held for the same server.
func (d *fwdDelivery) hold(s *fwdServer, holdFor time.Duration) {
	if d.held != s {
		d.held, d.heldSince, d.holdFor = s, time.Now(), holdFor
		return
	}
	d.holdFor = max(d.holdFor, holdFor)
}

// inDoubt reports whether a failed exchange may have left the request
// stored on the server: it was written whole (Send returned) and the ack
// timed out or the connection broke before it came. Not when the server
// refused us or acked something else.
func inDoubt(err error) bool {
	var oe *forward.OpError
	if !errors.As(err, &oe) || oe.Op != forward.OpAck {
		return false
	}
	return !errors.Is(err, forward.ErrAuth) && !errors.Is(err, forward.ErrAckMismatch)
}

// progress is what this attempt leaves for the next one.
func (d *fwdDelivery) progress() fwdProgress {
	return fwdProgress{acked: d.acked(), tried: max(d.tried, d.sentParts), held: d.held, heldSince: d.heldSince, holdFor: d.holdFor}
}

// acked returns how many leading parts are acknowledged.
func (d *fwdDelivery) acked() int { return max(d.skip, d.ackedParts) }

// add takes one event from the chunk scan.
func (d *fwdDelivery) add(tag string, t event.Time, record []byte) error {
	w := d.w
	g := w.groups[tag]
	if g == nil {
		tag = strings.Clone(tag) // kept past the call
		g = &fwdGroup{p: w.packer(tag)}
		w.groups[tag] = g
		w.order = append(w.order, g)
	}
	size := forward.EntrySize(t, record)
	if g.p.Events() > 0 && g.p.Size()+size+len(tag)+forward.RequestOverhead > d.f.maxRequest {
		if err := d.flush(g); err != nil {
			return err
		}
		tag = g.p.Tag()
		g = &fwdGroup{p: w.packer(tag)}
		w.groups[tag] = g
		w.order = append(w.order, g)
	}
	g.p.Add(t, record)
	w.buffered += size
	if w.buffered > 2*d.f.maxRequest || len(w.order) > maxGroups {
		big := w.order[0]
		for _, o := range w.order[1:] {
			if o.p.Size() > big.p.Size() {
				big = o
			}
		}
		return d.flush(big)
	}
	return nil
}

// flush sends a group's request and drops the group.
func (d *fwdDelivery) flush(g *fwdGroup) error {
	w := d.w
	err := d.send(g.p)
	w.buffered -= g.p.Size()
	delete(w.groups, g.p.Tag())
	if i := indexOf(w.order, g); i >= 0 {
		w.order = append(w.order[:i], w.order[i+1:]...)
	}
	w.recycle(g.p)
	return err
}

func indexOf(gs []*fwdGroup, g *fwdGroup) int {
	for i, x := range gs {
		if x == g {
			return i
		}
	}
	return -1
}

// flushAll sends the groups left, first seen first.
func (d *fwdDelivery) flushAll() error {
	for len(d.w.order) > 0 {
		if err := d.flush(d.w.order[0]); err != nil {
			return err
		}
	}
	return nil
}

// send delivers one part: to the chunk's current connection, else to the
// first healthy server in the chunk's rendezvous order, failing over to
// the next on errors.
func (d *fwdDelivery) send(p *forward.Packer) error {
	part := d.next
	d.next++
	if part < d.skip {
		d.events += p.Events()
		return nil
	}
	f := d.f
	chunkOpt := ""
	if f.requireAck {
		chunkOpt = f.partID(d.id, part)
	}
	req, err := d.w.enc.Encode(p, chunkOpt)
	if err != nil {
		return err
	}
	retry := part < d.tried
	var last error
	for {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if d.held != nil && !d.holding() {
			// Held long enough: the part goes elsewhere, and is stored twice
			// if the held server did store it.
			f.log.Warn("part in doubt no longer held for its server: sending it to another; if that server stored it, it is stored twice",
				"chunk", d.id, "part", part, "server", d.held.name, "held_for", time.Since(d.heldSince).Round(time.Millisecond), "server_status", d.held.status())
			d.held = nil
		}
		if d.held != nil && d.cl != nil && d.cur != d.held {
			d.release()
		}
		if d.cl == nil {
			var s *fwdServer
			if d.held != nil {
				if !d.held.isUp() {
					f.m.held.Inc()
					return fmt.Errorf("part %d waits up to %s for server %s (%s): it was sent there and not acked, so the server may have stored it, and a copy sent elsewhere would be stored twice",
						part, (d.holdFor - time.Since(d.heldSince)).Round(100*time.Millisecond), d.held.name, d.held.status())
				}
				s = d.held
			} else {
				cands := ranked(f.servers, d.ch, d.failed)
				if len(cands) == 0 {
					break
				}
				s = cands[0]
			}
			cl, fresh, err := s.get(d.ctx, f.maxAge)
			if err != nil {
				if d.ctx.Err() != nil {
					return d.ctx.Err()
				}
				f.fail(s, errorKind(err), err)
				d.failed = append(d.failed, s)
				last = err
				if s == d.held {
					// Paused (connects but no handshake) or gone again: keep
					// holding; holding bounds the wait.
					f.m.held.Inc()
					return fmt.Errorf("part %d held for server %s: %w", part, s.name, err)
				}
				continue
			}
			d.cur, d.cl, d.fresh, d.opened = s, cl, fresh, time.Now()
		}
		s := d.cur
		t0 := time.Now()
		s.m.requests.Inc()
		d.sentParts = part + 1
		if retry {
			s.m.retries.Inc()
		}
		if f.requireAck {
			err = d.cl.SendAcked(d.ctx, req, chunkOpt)
		} else {
			err = d.cl.Send(d.ctx, req)
		}
		if err == nil {
			if f.requireAck {
				s.m.acks.Inc()
				s.m.ackLatency.Observe(time.Since(t0).Seconds())
			}
			s.m.events.Add(float64(p.Events()))
			s.m.bytes.Add(float64(len(req)))
			if s != d.home && d.home != nil {
				d.home.m.failovers.Inc()
			}
			d.events += p.Events()
			d.ackedParts = part + 1
			d.held = nil
			return nil
		}
		d.cl.Close()
		d.cl = nil
		if d.ctx.Err() != nil {
			return d.ctx.Err()
		}
		kind := errorKind(err)
		doubt, holdFor, doubtErr := inDoubt(err), f.lostHold, err
		if kind == fwdKindAckTimeout {
			holdFor = f.hold
		}
		retry = true
		if !d.fresh && kind != fwdKindAuth && kind != fwdKindAckTimeout {
			// An idle kept-alive connection may have been closed by the
			// server or a load balancer: try once more on a new one to the
			// same server (same chunk id: its dedup window catches a
			// request that did get through). Not after an ack timeout: the
			// server is hung or overloaded, and another copy would only
			// queue behind the first.
			cl, ferr := forward.Dial(d.ctx, s.copts)
			if ferr == nil {
				d.cl, d.fresh, d.opened = cl, true, time.Now()
				f.log.Debug("kept-alive connection failed; resending on a new one", "server", s.name, "err", err)
				continue
			}
			err, kind = ferr, errorKind(ferr)
		}
		f.fail(s, kind, err)
		d.failed = append(d.failed, s)
		d.cur = nil
		last = err
		if doubt && holdFor > 0 {
			// The server took the request whole and did not answer: paused,
			// it may store it later; killed, it may have stored it before
			// the ack. Hold the part for it rather than fail over now.
			if d.held != s {
				f.log.Info("part in doubt: held for its server", "chunk", d.id, "part", part, "server", s.name, "up_to", holdFor, "err", doubtErr, "last_err", err)
			}
			d.hold(s, holdFor)
			f.m.held.Inc()
			return fmt.Errorf("part %d held for server %s up to %s: %w", part, s.name, d.holdFor, err)
		}
		d.held = nil
	}
	f.m.unavailable.Inc()
	var st []string
	for _, s := range f.servers {
		st = append(st, s.status())
	}
	if last != nil {
		return fmt.Errorf("no forward server took part %d (%s); last error: %w", part, strings.Join(st, "; "), last)
	}
	return fmt.Errorf("no forward server available (%s)", strings.Join(st, "; "))
}

// release returns the connection to its server's pool.
func (d *fwdDelivery) release() {
	if d.cl == nil {
		return
	}
	if d.f.keepalive && d.cl.ServerKeepalive() && d.ctx.Err() == nil {
		d.cur.put(d.cl, d.opened)
	} else {
		d.cl.Close()
	}
	d.cl = nil
}
