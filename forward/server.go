package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/lifecycle"
	"github.com/marutalog/maruta/internal/loglimit"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Config is the source's configuration, defaults already applied.
	Config config.Source
	// Next receives each request's valid events: Consume is called once per
	// request that has any, and the request is acked only after it returned
	// nil.
	Next       event.Consumer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Hostname is the default of security.self_hostname (os.Hostname when
	// empty), and the source host name of unix socket peers.
	Hostname string
	// Dedup is the dedup index the process's sources share (with a data
	// folder it survives restarts: the server then marks the batches of
	// acked requests). nil with dedup configured: an index in memory, for
	// this server only.
	Dedup *dedup.Store
}

// Timeouts that are not configurable.
const (
	tlsHandshakeTimeout = 10 * time.Second
	writeTimeout        = 60 * time.Second
	hostLookupTimeout   = 3 * time.Second
)

// Server receives the Forward protocol v1 (fluentd's in_forward): Docker's
// fluentd log driver, fluentd and Fluent Bit out_forward, maruta agents.
//
// NewServer binds the listeners; Run serves until its context is done. One
// goroutine serves each connection: it reads requests in order and hands
// every complete request it has read, one Consume per run of requests with
// the same tag, to Next with a Commit (event.Batch), then reads on; a
// second goroutine per connection (from its first request with a chunk
// option) waits for each batch's commit and writes the acks in request
// order. Several connections call Next.Consume concurrently. Records handed
// to Next point into the connection's buffers and are valid only during
// Consume.
//
// Shutdown: when Run's context is done the server stops the kernel from
// establishing new connections, takes those it had already established (a
// client may have written into one) and closes the listener; each
// connection reads on until nothing arrived for shutdown_quiet (a client
// that has not learnt of the stop yet still gets what it wrote stored),
// hands on what it read, writes the acks due, and closes (with a reset when
// its client never reads: see conn.closeSocket); then Run returns. Drain
// starts the same shutdown without cancelling the context and waits for it,
// for as long as its own context allows. Close stops at once: it cancels the
// context of running Consume calls and of commit waits (nothing more is
// acked) and closes everything. Close may be called concurrently with Run,
// before or after it, and more than once. These are the methods of
// lifecycle.Component.
type Server struct {
	cfg      config.Source
	next     event.Consumer
	log      *slog.Logger
	m        *metrics
	limits   *loglimit.Keyed
	auth     *authenticator // nil without security
	tls      *tls.Config    // nil without TLS
	hostname string
	hosts    *hostCache     // nil unless source_hostname_key is set
	budget   *inflateBudget // decompression memory of all connections
	dedup    *dedup.Store   // nil unless dedup is on
	window   time.Duration  // the source's dedup window
	quiet    time.Duration
	now      func() event.Time

	ln  net.Listener
	udp net.PacketConn // nil when the heartbeat is off or on a unix socket

	consumeCtx    context.Context // cancelled by Close
	cancelConsume context.CancelFunc

	sem        chan struct{} // one slot per open connection
	stopAccept chan struct{} // closed when accepting stops
	closed     chan struct{} // closed by Close
	drainReq   chan struct{} // closed by Drain
	finished   chan struct{} // closed when Run has stopped serving
	stopOnce   sync.Once
	closeOnce  sync.Once
	drainOnce  sync.Once
	running    atomic.Bool

	mu       sync.Mutex
	conns    map[*conn]struct{}
	draining bool // new connections are refused

	wg sync.WaitGroup
}

var _ lifecycle.Component = (*Server)(nil)

// NewServer checks the configuration and binds the listeners (TCP and the
// UDP heartbeat on the same port, or a unix socket), so that an address in
// use is reported before anything runs.
func NewServer(opts ServerOptions) (*Server, error) {
	cfg := opts.Config
	if opts.Next == nil {
		return nil, errors.New("create forward server: no consumer")
	}
	if cfg.ChunkSizeLimit <= 0 || cfg.MaxDecompressedSize <= 0 || cfg.MaxDepth < 4 || cfg.MaxConnections < 1 {
		return nil, fmt.Errorf("create forward server %q: limits not set (chunk_size_limit, max_decompressed_size, max_depth >= 4, max_connections)", cfg.Name)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:        cfg,
		next:       opts.Next,
		log:        logger.With("component", "forward", "source", cfg.Name),
		limits:     loglimit.NewKeyed(time.Second),
		hostname:   opts.Hostname,
		sem:        make(chan struct{}, cfg.MaxConnections),
		stopAccept: make(chan struct{}),
		closed:     make(chan struct{}),
		drainReq:   make(chan struct{}),
		finished:   make(chan struct{}),
		conns:      make(map[*conn]struct{}),
		quiet:      cfg.ShutdownQuiet.D(),
		now:        event.Now,
	}
	if s.quiet <= 0 {
		s.quiet = config.DefaultShutdownQuiet
	}
	if s.hostname == "" {
		s.hostname, _ = os.Hostname()
	}
	if sec := cfg.Security; sec != nil {
		a := &authenticator{hostname: sec.SelfHostname, sharedKey: sec.SharedKey, userAuth: sec.UserAuth, users: map[string]string{}}
		if a.hostname == "" {
			a.hostname = s.hostname
		}
		for _, u := range sec.Users {
			a.users[u.Username] = u.Password
		}
		s.auth = a
	}
	if cfg.TLS != nil {
		tc, err := serverTLS(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("create forward server %q: %w", cfg.Name, err)
		}
		s.tls = tc
	}
	if cfg.SourceHostnameKey != "" {
		s.hosts = newHostCache()
	}
	if d := cfg.Dedup; d.On() {
		if d.Window <= 0 || d.MaxEntries < 1 {
			return nil, fmt.Errorf("create forward server %q: dedup window and max_entries must be set", cfg.Name)
		}
		s.dedup, s.window = opts.Dedup, d.Window.D()
		if s.dedup == nil {
			st, err := dedup.Open(dedup.Options{Window: d.Window.D(), MaxEntries: d.MaxEntries, Logger: logger})
			if err != nil {
				return nil, fmt.Errorf("create forward server %q: %w", cfg.Name, err)
			}
			s.dedup = st
		}
	}
	if err := s.listen(); err != nil {
		return nil, fmt.Errorf("create forward server %q: %w", cfg.Name, err)
	}
	s.budget = newInflateBudget(int64(cfg.MaxDecompressedSize), s.closed)
	m, err := newMetrics(opts.Registerer, cfg.Name, s.budget.inUse)
	if err != nil {
		s.ln.Close()
		if s.udp != nil {
			s.udp.Close()
		}
		return nil, fmt.Errorf("create forward server %q: register metrics: %w", cfg.Name, err)
	}
	s.m = m
	s.consumeCtx, s.cancelConsume = context.WithCancel(context.Background())
	return s, nil
}

func serverTLS(t *config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.CAFile != "" {
		pool, err := loadCAPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
	}
	switch t.ClientAuth {
	case "", config.ClientAuthNone:
		tc.ClientAuth = tls.NoClientCert
	case config.ClientAuthRequest:
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case config.ClientAuthRequire:
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("unknown TLS client_auth %q", t.ClientAuth)
	}
	return tc, nil
}

// listen binds the TCP listener and the UDP heartbeat socket on the same
// port, or the unix socket.
func (s *Server) listen() error {
	addr := s.cfg.Listen
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := removeStaleSocket(path); err != nil {
			return err
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		s.ln = ln
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", addr, err)
	}
	heartbeat := s.cfg.Heartbeat == nil || *s.cfg.Heartbeat
	// With port 0 the kernel picks a TCP port whose UDP twin may be taken:
	// try a few.
	// Plain TCP, not Go's default Multipath TCP: a stopping server attaches
	// a socket filter to the listener (refuseNew), which the kernel refuses
	// on MPTCP sockets. Forward clients speak plain TCP anyway.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	for attempt := 0; ; attempt++ {
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		if !heartbeat {
			s.ln = ln
			return nil
		}
		tcpPort := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, fmt.Sprint(tcpPort)))
		if err == nil {
			s.ln, s.udp = ln, udp
			return nil
		}
		ln.Close()
		if port != "0" || attempt >= 9 {
			return fmt.Errorf("listen for UDP heartbeats: %w", err)
		}
	}
}

// removeStaleSocket removes a unix socket file nobody listens on any more.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket path: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("listen on %s: exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("listen on %s: another process is listening", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// Addr returns the bound TCP or unix address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx is done or Drain is called, then shuts down
// gracefully (see Server), or until Close. It returns nil after a shutdown;
// it may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("run forward server: already running")
	}
	defer close(s.finished)
	select {
	case <-s.closed:
		return nil
	default:
	}
	s.log.Info("listening", "address", s.ln.Addr().String(), "tls", s.tls != nil,
		"security", s.auth != nil, "heartbeat", s.udp != nil)
	s.wg.Go(s.acceptLoop)
	if s.udp != nil {
		s.wg.Go(s.heartbeatLoop)
	}
	select {
	case <-ctx.Done():
		s.drain()
	case <-s.drainReq:
		s.drain()
	case <-s.closed:
	}
	s.wg.Wait()
	s.log.Info("stopped")
	return nil
}

// Drain shuts the server down gracefully, as the end of Run's context does
// (see Server), and waits until every connection has handed on what it read
// and closed. It returns an error wrapping ctx's when ctx ends first; Close
// then ends the connections left. A server whose Run never started holds
// nothing: Drain returns at once. Safe to call more than once.
func (s *Server) Drain(ctx context.Context) error {
	s.drainOnce.Do(func() { close(s.drainReq) })
	if !s.running.Load() {
		return nil
	}
	select {
	case <-s.finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain forward server %q: connections still sending: %w", s.cfg.Name, ctx.Err())
	}
}

// Close stops the server at once: it cancels the context of running
// Consume calls and closes the listeners and every connection. Run then
// returns promptly. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancelConsume()
		s.stopAccepting()
		s.mu.Lock()
		s.draining = true
		close(s.closed) // under mu: acceptLoop closes what it accepts from now on
		for c := range s.conns {
			c.closing.Store(true)
			c.closeSocket(true)
		}
		s.mu.Unlock()
	})
	return nil
}

func (s *Server) stopAccepting() {
	s.stopOnce.Do(func() {
		close(s.stopAccept)
		s.ln.Close()
		if s.udp != nil {
			s.udp.Close()
		}
	})
}

// drain is the graceful shutdown: each connection reads on until it has
// been quiet for shutdown_quiet (or ends), hands on what it read and writes
// the acks due. The listener first stops establishing new connections
// (refuseNew: before a quiet connection is ended, so its client cannot
// reconnect into the gap), then gives up those the kernel has already
// established (a
// client may have written into one): acceptLoop takes them, as draining
// ones, until Accept finds none for backlogWait, then closes the listener.
func (s *Server) drain() {
	s.refuseNew()
	s.mu.Lock()
	s.draining = true
	for c := range s.conns {
		c.drain(s.quiet)
	}
	s.mu.Unlock()
	if !s.setAcceptDeadline() {
		s.stopAccepting()
	}
}

// refuseNew stops the kernel from establishing new connections on the
// listener, before the server takes the established ones and closes it.
// Without it, a connection that completes after the server's last Accept is
// reset when the listener closes, and what its client wrote at once is lost
// although the write succeeded (Docker's driver, reconnecting, writes the
// line it retries at once). A TCP listener gets a socket filter that drops
// every packet (Linux: the client's SYN goes unanswered, it retries it and
// reaches the next process on the port or is refused); a unix socket's
// path is removed (a client's connect fails at once).
func (s *Server) refuseNew() {
	switch ln := s.ln.(type) {
	case *net.TCPListener:
		if err := refuseHandshakes(ln); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			s.log.Warn("stopping: new connections are not refused before the listener closes", "error", err)
		}
	case *net.UnixListener:
		path := ln.Addr().String()
		if strings.HasPrefix(path, "@") { // abstract: no file
			return
		}
		ln.SetUnlinkOnClose(false) // the path may be the next process's by then
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("stopping: remove unix socket", "path", path, "error", err)
		}
	}
}

// backlogWait is how long a draining server's Accept waits for a
// connection the kernel established before the listener closes.
const backlogWait = 50 * time.Millisecond

// setAcceptDeadline makes a blocked or later Accept return within
// backlogWait; false when the listener has no deadlines.
func (s *Server) setAcceptDeadline() bool {
	d, ok := s.ln.(interface{ SetDeadline(time.Time) error })
	return ok && d.SetDeadline(time.Now().Add(backlogWait)) == nil
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		select {
		case s.sem <- struct{}{}:
		default:
			s.m.errors.WithLabelValues(reasonMaxConnections).Inc()
			if ok, sup := s.limits.Allow(reasonMaxConnections); ok {
				s.log.Warn("max_connections reached: new connections wait", "max_connections", s.cfg.MaxConnections, "suppressed", sup)
			}
			select {
			case s.sem <- struct{}{}:
			case <-s.stopAccept:
				return
			}
		}
		if s.isDraining() {
			s.setAcceptDeadline() // the backlog only (see drain)
		}
		nc, err := s.ln.Accept()
		if err != nil {
			<-s.sem
			select {
			case <-s.stopAccept:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && s.isDraining() {
				s.stopAccepting() // the backlog is taken
				return
			}
			// Out of file descriptors and the like: wait and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.stopAccept:
				return
			}
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			nc.Close()
			<-s.sem
			continue
		default:
		}
		if s.draining {
			c.drain(s.quiet) // read what it sent until it is quiet
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() { <-s.sem }()
			c.serve()
		})
	}
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// heartbeatLoop answers fluentd's UDP heartbeat with one 0x00 byte.
func (s *Server) heartbeatLoop() {
	buf := make([]byte, 128)
	reply := []byte{0}
	for {
		_, addr, err := s.udp.ReadFrom(buf)
		if err != nil {
			select {
			case <-s.stopAccept:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if ok, sup := s.limits.Allow("udp"); ok {
				s.log.Warn("read UDP heartbeat", "error", err, "suppressed", sup)
			}
			continue
		}
		if _, err := s.udp.WriteTo(reply, addr); err != nil {
			if ok, sup := s.limits.Allow("udp"); ok {
				s.log.Debug("answer UDP heartbeat", "peer", addr.String(), "error", err, "suppressed", sup)
			}
			continue
		}
		s.m.heartbeatsUDP.Inc()
	}
}

// hostCache remembers reverse DNS answers for source_hostname_key.
type hostCache struct {
	mu    sync.Mutex
	names map[string]hostEntry
}

type hostEntry struct {
	name    string
	expires time.Time
}

const hostCacheTTL = 10 * time.Minute

func newHostCache() *hostCache { return &hostCache{names: map[string]hostEntry{}} }

// lookup returns the host name of ip, or ip itself when it has none.
func (h *hostCache) lookup(ctx context.Context, ip string) string {
	now := time.Now()
	h.mu.Lock()
	e, ok := h.names[ip]
	h.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.name
	}
	ctx, cancel := context.WithTimeout(ctx, hostLookupTimeout)
	defer cancel()
	name := ip
	if names, err := net.DefaultResolver.LookupAddr(ctx, ip); err == nil && len(names) > 0 {
		name = strings.TrimSuffix(names[0], ".")
	}
	h.mu.Lock()
	if len(h.names) >= 10000 {
		clear(h.names)
	}
	h.names[ip] = hostEntry{name: name, expires: now.Add(hostCacheTTL)}
	h.mu.Unlock()
	return name
}
