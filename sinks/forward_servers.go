package sinks

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
)

// udpMissesDown is how many UDP heartbeats in a row may go unanswered
// before a server is marked down (datagrams get lost; a refused TCP
// connect is definite and marks it down at once).
const udpMissesDown = 3

// maxIdlePerServer bounds the idle connections kept per server.
const maxIdlePerServer = 8

// fwdServer is one destination of a forward output: its address, its
// health, and a pool of idle connections. Safe for concurrent use.
type fwdServer struct {
	name     string
	address  string // host:port or unix:///path
	unix     bool
	weight   float64
	standby  bool
	nameHash uint64
	copts    forward.ClientOptions
	m        *fwdServerMetrics

	mu        sync.Mutex
	up        bool
	kind      string    // error kind that took it down, or of the last failed probe
	reason    string    // why it is down
	downSince time.Time // when it went down
	probing   bool
	udpMisses int
	idle      []pooledClient
	lastAuth  time.Time // last error log of a refused handshake while down
}

type pooledClient struct {
	c      *forward.Client
	opened time.Time
}

func newFwdServer(sv config.ForwardServer, copts forward.ClientOptions, m *fwdMetrics) *fwdServer {
	s := &fwdServer{name: sv.Name, weight: float64(sv.Weight), standby: sv.Standby, up: true}
	if strings.HasPrefix(sv.Host, "unix://") {
		s.address, s.unix = sv.Host, true
	} else {
		s.address = net.JoinHostPort(sv.Host, strconv.Itoa(sv.Port))
	}
	copts.Address = s.address
	s.copts = copts
	h := fnv.New64a()
	h.Write([]byte(sv.Name))
	s.nameHash = mix64(h.Sum64())
	s.m = m.server(sv.Name)
	s.m.up.Set(1)
	return s
}

// isUp reports whether chunks may go to the server.
func (s *fwdServer) isUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// get returns an idle connection younger than maxAge that the server has
// not closed, or dials a new one (resolving the host name again). fresh
// tells which.
func (s *fwdServer) get(ctx context.Context, maxAge time.Duration) (c *forward.Client, fresh bool, err error) {
	now := time.Now()
	var stale []*forward.Client
	s.mu.Lock()
	for len(s.idle) > 0 {
		pc := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if maxAge > 0 && now.Sub(pc.opened) >= maxAge || pc.c.PeerClosed() {
			// Too old, or closed by the server while idle: a request
			// written to it would fail in doubt (see inDoubt).
			stale = append(stale, pc.c)
			continue
		}
		c = pc.c
		break
	}
	s.mu.Unlock()
	for _, sc := range stale {
		sc.Close()
	}
	if c != nil {
		return c, false, nil
	}
	c, err = forward.Dial(ctx, s.copts)
	return c, true, err
}

// put keeps c for reuse, or closes it when the pool is full or the server
// is down.
func (s *fwdServer) put(c *forward.Client, opened time.Time) {
	s.mu.Lock()
	if s.up && len(s.idle) < maxIdlePerServer {
		s.idle = append(s.idle, pooledClient{c: c, opened: opened})
		c = nil
	}
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// closeIdle closes every pooled connection.
func (s *fwdServer) closeIdle() {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// markDown takes the server out of rotation. It reports whether the server
// was up.
func (s *fwdServer) markDown(kind, reason string) bool {
	s.mu.Lock()
	was := s.up
	s.up = false
	s.kind, s.reason = kind, reason
	s.udpMisses = 0
	if was {
		s.downSince = time.Now()
	}
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
	s.m.up.Set(0)
	return was
}

// markUp puts the server back into rotation. It reports whether it was
// down, and for how long.
func (s *fwdServer) markUp() (bool, time.Duration) {
	s.mu.Lock()
	was := !s.up
	s.up = true
	s.udpMisses = 0
	since := s.downSince
	s.mu.Unlock()
	s.m.up.Set(1)
	return was, time.Since(since)
}

// refusing reports whether the server is down because connections to it
// are refused or fail (the process is gone, not paused).
func (s *fwdServer) refusing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.up && s.kind == fwdKindConnect
}

// status describes the server for error messages.
func (s *fwdServer) status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return s.name + ": up"
	}
	return fmt.Sprintf("%s: down for %s (%s)", s.name, time.Since(s.downSince).Round(time.Millisecond), s.reason)
}

// mix64 is splitmix64's finalizer: a good 64-bit mixer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// chunkHash hashes a buffer chunk id for server selection.
func chunkHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// score is the server's weighted rendezvous score for a chunk: among the
// candidates the highest score wins, each server winning a share of chunks
// proportional to its weight, and a chunk keeps its server as long as that
// server is a candidate.
func (s *fwdServer) score(ch uint64) float64 {
	u := (float64(mix64(ch^s.nameHash)>>11) + 0.5) / (1 << 53) // in (0, 1)
	return -s.weight / math.Log(u)
}

// ranked returns the servers in the order a chunk tries them: healthy
// active servers by score, then healthy standbys by score. Servers in skip
// are left out.
func ranked(servers []*fwdServer, ch uint64, skip []*fwdServer) []*fwdServer {
	type cand struct {
		s     *fwdServer
		score float64
	}
	var cs []cand
	for _, s := range servers {
		if slices.Contains(skip, s) || !s.isUp() {
			continue
		}
		cs = append(cs, cand{s, s.score(ch)})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.s.standby != b.s.standby {
			if a.s.standby {
				return 1
			}
			return -1
		}
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	out := make([]*fwdServer, len(cs))
	for i, c := range cs {
		out[i] = c.s
	}
	return out
}

// home returns the active server a chunk goes to when every server is
// healthy.
func home(servers []*fwdServer, ch uint64) *fwdServer {
	var best *fwdServer
	var bestScore float64
	for _, s := range servers {
		if s.standby {
			continue
		}
		if sc := s.score(ch); best == nil || sc > bestScore {
			best, bestScore = s, sc
		}
	}
	return best
}

// errorKind classifies a client error for metrics and logs.
func errorKind(err error) string {
	var oe *forward.OpError
	if !errors.As(err, &oe) {
		return fwdKindAck
	}
	switch {
	case errors.Is(err, forward.ErrAuth):
		return fwdKindAuth
	case errors.Is(err, forward.ErrAckTimeout):
		return fwdKindAckTimeout
	}
	switch oe.Op {
	case forward.OpConnect:
		return fwdKindConnect
	case forward.OpTLS:
		return fwdKindTLS
	case forward.OpHandshake:
		return fwdKindHandshake
	case forward.OpSend:
		return fwdKindSend
	}
	return fwdKindAck
}

// fail records a failed exchange with s and takes it out of rotation.
func (f *Forward) fail(s *fwdServer, kind string, err error) {
	s.m.errors[kind].Inc()
	if !s.markDown(kind, kind+": "+err.Error()) {
		return
	}
	if kind == fwdKindAuth || kind == fwdKindTLS {
		f.log.Error("forward server refused us: check the output's security (shared_key, username, password) and tls settings against the server's; chunks stay buffered and are retried",
			"server", s.name, "address", s.address, "kind", kind, "err", err)
		return
	}
	f.log.Warn("forward server down: its chunks go to the other servers", "server", s.name, "address", s.address, "kind", kind, "err", err)
}

// heartbeat probes every server each heartbeat_interval until Close.
func (f *Forward) heartbeat() {
	t := time.NewTicker(f.hbInterval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		for _, s := range f.servers {
			s.mu.Lock()
			start := !s.probing
			s.probing = true
			s.mu.Unlock()
			if start {
				f.wg.Go(func() { f.probe(s) })
			}
		}
	}
}

// transportHeartbeat opens a connection to s the way chunks go and closes
// it: a bare connect and close when that is all the transport is; with TLS
// or a shared key the whole session (TLS handshake, HELO/PING/PONG), which
// a server logs no error for — Fluent Bit logs a bare connect to a server
// with a shared key as a handshake error, and TLS servers an unexpected
// EOF.
func (f *Forward) transportHeartbeat(ctx context.Context, s *fwdServer) error {
	if s.copts.Security == nil && (s.copts.TLS == nil || s.unix) {
		return forward.ProbeTCP(ctx, s.address, f.connectTimeout)
	}
	c, err := forward.Dial(ctx, s.copts)
	if err != nil {
		return err
	}
	return c.Close()
}

// probe checks one server. A healthy server gets the configured heartbeat;
// a down one must pass a full exchange to come back: connect, TLS,
// handshake and (with acks) an empty request acked.
func (f *Forward) probe(s *fwdServer) {
	defer func() {
		s.mu.Lock()
		s.probing = false
		s.mu.Unlock()
	}()
	ctx := f.probeCtx
	if s.isUp() {
		typ := f.cfg.HeartbeatType
		if typ == config.HeartbeatUDP && s.unix {
			typ = config.HeartbeatTransport
		}
		switch typ {
		case config.HeartbeatTransport, config.HeartbeatTCP:
			// A heartbeat that has started completes its session even if
			// Close comes meanwhile (bounded by connect_timeout; Close
			// waits for it): cut in the middle of its handshake it is the
			// bare connect a server logs as an error.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.connectTimeout)
			err := f.transportHeartbeat(hctx, s)
			cancel()
			if err != nil && ctx.Err() == nil {
				f.fail(s, fwdKindHeartbeat, err)
			}
		case config.HeartbeatUDP:
			err := forward.ProbeUDP(ctx, s.address, min(f.hbInterval, f.connectTimeout))
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if err == nil {
				s.udpMisses = 0
			} else {
				s.udpMisses++
			}
			down := s.udpMisses >= udpMissesDown
			s.mu.Unlock()
			if down {
				f.fail(s, fwdKindHeartbeat, fmt.Errorf("%d UDP heartbeats unanswered: %w", udpMissesDown, err))
			}
		}
		return
	}
	c, err := forward.Dial(ctx, s.copts)
	opened := time.Now()
	if err == nil && f.requireAck {
		pctx, cancel := context.WithTimeout(ctx, min(f.ackTimeout, f.connectTimeout))
		err = c.Probe(pctx)
		cancel()
	}
	if ctx.Err() != nil {
		if c != nil {
			c.Close()
		}
		return
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		kind := errorKind(err)
		s.m.errors[fwdKindHeartbeat].Inc()
		s.mu.Lock()
		s.kind, s.reason = kind, kind+": "+err.Error()
		logAuth := (kind == fwdKindAuth || kind == fwdKindTLS) && time.Since(s.lastAuth) >= time.Minute
		if logAuth {
			s.lastAuth = time.Now()
		}
		s.mu.Unlock()
		if logAuth {
			f.log.Error("forward server still refuses us: check security and tls settings", "server", s.name, "kind", kind, "err", err)
		} else {
			f.log.Debug("forward server still down", "server", s.name, "kind", kind, "err", err)
		}
		return
	}
	if was, d := s.markUp(); was {
		f.log.Info("forward server up again", "server", s.name, "address", s.address, "remote", c.RemoteAddr().String(), "down_for", d.Round(time.Millisecond))
	}
	if f.keepalive && c.ServerKeepalive() {
		s.put(c, opened)
	} else {
		c.Close()
	}
}
