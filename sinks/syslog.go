package sinks

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/ruby"
	"github.com/marutalog/maruta/sinks/layout"
)

// Syslog is the sink of a syslog output: each event becomes one RFC 5424
// message (several when it is longer than max_message_size and oversize is
// split),
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//
// PRI = facility×8 + severity; TIMESTAMP the event time in UTC with
// microseconds; the header fields rendered from their templates, printable
// ASCII only, cut to RFC 5424's lengths, "-" when empty; no structured
// data; MSG the record's message_key value (maps and arrays as JSON) or
// the record as JSON, as bytes (no BOM).
//
// Transport: TCP, TLS over TCP (verified against ca_file or the system
// roots unless insecure_skip_verify; the server name is server_name or
// host) or UDP (one message per datagram). TCP framing is octet counting
// (RFC 6587 3.4.1, "LEN SP MSG": a message may hold any byte, newlines
// included) or newline (the traditional framing: a CR or LF inside a
// message is written as #015 / #012, rsyslog's own escape, so the receiver
// still sees one message). Connections are kept between chunks (up to
// keepaliveAge) and checked before reuse: one the server closed is
// replaced, so a chunk is not written into a dead socket.
//
// Syslog has no acknowledgement: a chunk counts as delivered when all its
// messages were written to the socket without error. A failure (connect,
// TLS, write) returns a retryable error and the buffer sends the whole
// chunk again, so messages written before a connection broke may arrive
// twice; messages in flight when a server crashes may be lost (TCP/TLS),
// and UDP may lose messages silently. Use the forward output for
// acknowledged delivery.
//
// Write is safe for concurrent use; each Write uses its own connection.
type Syslog struct {
	eventSinkBase
	cfg      *config.SyslogOutput
	addr     string
	network  string
	tlsConf  *tls.Config
	caDesc   string
	fields   [4]*layout.EventTemplate // app_name, hostname, procid, msgid
	sev, fac int
	maxSize  int
	truncate bool
	newline  bool
	connect  time.Duration
	send     time.Duration
	oversize *prometheus.CounterVec

	mu   sync.Mutex
	idle []*syslogConn
}

var _ delivery.Sink = (*Syslog)(nil)

// RFC 5424 field lengths: APP-NAME, HOSTNAME, PROCID, MSGID.
var syslogFieldMax = [4]int{48, 255, 128, 32}

const keepaliveAge = 5 * time.Minute

type syslogConn struct {
	c      net.Conn
	w      *bufio.Writer
	opened time.Time
}

// NewSyslog builds the sink of a syslog output. It reads the TLS files
// (a missing or unreadable ca_file is an error here) and dials nothing.
func NewSyslog(opts Options) (*Syslog, error) {
	out := opts.Output
	if out == nil || out.Syslog == nil {
		return nil, errors.New("new syslog sink: not a syslog output")
	}
	cfg := out.Syslog
	s := &Syslog{
		eventSinkBase: newEventSinkBase(opts),
		cfg:           cfg,
		addr:          net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		network:       string(cfg.Protocol),
		maxSize:       int(cfg.MaxMessageSize),
		truncate:      cfg.Oversize == config.OversizeTruncate,
		newline:       cfg.Framing == config.FramingNewline,
		connect:       cfg.ConnectTimeout.D(),
		send:          cfg.SendTimeout.D(),
	}
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	for i, t := range []string{cfg.AppName, host, cfg.ProcID, cfg.MsgID} {
		s.fields[i] = layout.ParseEventTemplate(t)
	}
	var ok bool
	if s.sev, ok = config.SyslogCode(config.SyslogSeverities, cfg.Severity); !ok {
		s.sev = 6
	}
	if s.fac, ok = config.SyslogCode(config.SyslogFacilities, cfg.Facility); !ok {
		s.fac = 1
	}
	if cfg.TLS != nil {
		tc, err := forward.ClientTLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", out.Name, config.AtKey("tls", err))
		}
		if tc.ServerName == "" {
			tc.ServerName = cfg.Host
		}
		s.tlsConf, s.caDesc = tc, "the system's root CAs"
		if cfg.TLS.CAFile != "" {
			s.caDesc = "ca_file " + cfg.TLS.CAFile
		}
	}
	s.oversize = newOversizeCounter(opts)
	for _, k := range []string{kindNetwork, kindPermanent} {
		s.sm.errors.WithLabelValues(k)
	}
	s.log.Info("syslog sink ready", "address", s.addr, "protocol", s.network, "tls", s.tlsConf != nil, "framing", cfg.Framing)
	return s, nil
}

// Close closes the idle connections.
func (s *Syslog) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, c := range idle {
		c.c.Close()
	}
	return nil
}

// Write implements delivery.Sink: see Syslog.
func (s *Syslog) Write(ctx context.Context, c delivery.Chunk) error {
	start := time.Now()
	info := c.Info()
	defer func() { s.sm.duration.Observe(since(start)) }()
	conn, err := s.get(ctx)
	if err != nil {
		s.sm.errors.WithLabelValues(kindNetwork).Inc()
		s.log.Warn("cannot connect to the syslog server; the buffer retries", "address", s.addr, "err", err)
		return fmt.Errorf("syslog chunk %s: %w", info.ID, err)
	}
	conn.c.SetWriteDeadline(time.Now().Add(s.send))
	stop := context.AfterFunc(ctx, func() { conn.c.SetWriteDeadline(time.Now()) })
	var events, bytes int
	var hdr, msg, frame []byte
	err = c.Scan(func(tag string, t event.Time, record []byte) error {
		events++
		hdr = s.header(hdr[:0], tag, t, record)
		msg = s.message(msg[:0], record)
		budget := max(s.maxSize-len(hdr), 64)
		if len(msg) > budget {
			if s.truncate {
				s.oversize.WithLabelValues("truncate").Inc()
			} else {
				s.oversize.WithLabelValues("split").Inc()
			}
		}
		return splitUTF8(msg, budget, s.truncate, func(p []byte) error {
			frame = s.frame(append(frame[:0], hdr...), p)
			bytes += len(frame)
			return s.writeFrame(conn, frame)
		})
	})
	if err == nil && conn.w != nil {
		err = conn.w.Flush()
	}
	stop()
	if err != nil {
		conn.c.Close()
		if ctx.Err() != nil {
			return fmt.Errorf("syslog chunk %s: %w", info.ID, ctx.Err())
		}
		s.sm.errors.WithLabelValues(kindNetwork).Inc()
		s.log.Warn("sending to the syslog server failed; the buffer retries the chunk", "address", s.addr, "chunk", info.ID, "err", err)
		return fmt.Errorf("syslog chunk %s: send to %s: %w", info.ID, s.addr, err)
	}
	s.put(conn)
	s.sm.rows.Add(float64(events))
	s.sm.bytes.Add(float64(bytes))
	s.sm.inputBytes.Add(float64(info.Bytes))
	return nil
}

func (s *Syslog) writeFrame(conn *syslogConn, frame []byte) error {
	if conn.w == nil { // udp: a datagram per message
		_, err := conn.c.Write(frame)
		return err
	}
	_, err := conn.w.Write(frame)
	return err
}

// header appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - ".
func (s *Syslog) header(dst []byte, tag string, t event.Time, record []byte) []byte {
	sev, fac := s.sev, s.fac
	if k := s.cfg.SeverityKey; k != "" {
		if v, ok := recordCode(record, k, config.SyslogSeverities); ok {
			sev = v
		}
	}
	if k := s.cfg.FacilityKey; k != "" {
		if v, ok := recordCode(record, k, config.SyslogFacilities); ok {
			fac = v
		}
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(fac*8+sev), 10)
	dst = append(dst, ">1 "...)
	dst = t.Std().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	// HOSTNAME APP-NAME PROCID MSGID, in the wire's order.
	for _, i := range []int{1, 0, 2, 3} {
		dst = append(dst, ' ')
		n := len(dst)
		dst, _ = s.fields[i].Render(dst, tag, t, record)
		dst = cleanHeaderField(dst, n, syslogFieldMax[i])
	}
	return append(dst, " - "...)
}

// cleanHeaderField makes dst[n:] an RFC 5424 header field: printable
// US-ASCII (33-126; others become '_'), at most max bytes, "-" when empty.
func cleanHeaderField(dst []byte, n, max int) []byte {
	if len(dst)-n > max {
		dst = dst[:n+max]
	}
	for i := n; i < len(dst); i++ {
		if dst[i] < 33 || dst[i] > 126 {
			dst[i] = '_'
		}
	}
	if len(dst) == n {
		dst = append(dst, '-')
	}
	return dst
}

// recordCode reads a severity or facility (name or number) from a record.
func recordCode(record []byte, key string, names []string) (int, bool) {
	v, found, err := msgpack.MapGet(record, key, 100)
	if err != nil || !found {
		return 0, false
	}
	return config.SyslogCode(names, string(ruby.AppendToS(nil, v)))
}

// message appends the event's MSG: the message_key value (maps and arrays
// as JSON, other values as Ruby's to_s) or the whole record as JSON.
func (s *Syslog) message(dst, record []byte) []byte {
	if k := *s.cfg.MessageKey; k != "" {
		if v, found, err := msgpack.MapGet(record, k, 100); err == nil && found {
			if t := msgpack.Peek(v); t != msgpack.Map && t != msgpack.Array {
				return ruby.AppendToS(dst, v)
			}
			record = v
		}
	}
	out, _, _, err := msgpack.AppendJSON(dst, record, 100)
	if err != nil {
		return dst
	}
	return out
}

// frame appends msg to the header in buf with the TCP framing.
func (s *Syslog) frame(buf, msg []byte) []byte {
	switch {
	case s.network == "udp":
		return append(buf, msg...)
	case s.newline:
		for _, c := range msg {
			switch c {
			case '\n':
				buf = append(buf, "#012"...)
			case '\r':
				buf = append(buf, "#015"...)
			default:
				buf = append(buf, c)
			}
		}
		return append(buf, '\n')
	}
	// Octet counting: the length goes before the header already in buf.
	n := len(buf) + len(msg)
	prefix := strconv.AppendInt(nil, int64(n), 10)
	prefix = append(prefix, ' ')
	buf = append(buf, msg...)
	buf = append(buf, prefix...) // grow
	copy(buf[len(prefix):], buf[:n])
	copy(buf, prefix)
	return buf
}

// get returns an idle connection that is still open, or dials.
func (s *Syslog) get(ctx context.Context) (*syslogConn, error) {
	for {
		s.mu.Lock()
		var c *syslogConn
		if n := len(s.idle); n > 0 {
			c, s.idle = s.idle[n-1], s.idle[:n-1]
		}
		s.mu.Unlock()
		if c == nil {
			break
		}
		if time.Since(c.opened) < keepaliveAge && s.alive(c) {
			return c, nil
		}
		c.c.Close()
	}
	return s.dial(ctx)
}

// alive reports whether the server has not closed an idle TCP connection:
// a read that finds nothing within a millisecond means open.
func (s *Syslog) alive(c *syslogConn) bool {
	if s.network == "udp" {
		return true
	}
	c.c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.c.Read(b[:])
	c.c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Syslog) put(c *syslogConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle) < 4 {
		s.idle = append(s.idle, c)
		return
	}
	c.c.Close()
}

func (s *Syslog) dial(ctx context.Context) (*syslogConn, error) {
	d := net.Dialer{Timeout: s.connect, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if s.tlsConf != nil {
		td := tls.Dialer{NetDialer: &d, Config: s.tlsConf}
		c, err = td.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, s.tlsError(err)
		}
	} else {
		c, err = d.DialContext(ctx, s.network, s.addr)
		if err != nil {
			return nil, err
		}
	}
	sc := &syslogConn{c: c, opened: time.Now()}
	if s.network != "udp" {
		sc.w = bufio.NewWriterSize(c, 64<<10)
	}
	return sc, nil
}

// tlsError says what is wrong when the server's certificate is refused.
func (s *Syslog) tlsError(err error) error {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("TLS: the server's certificate is not signed by a CA in %s (set tls.ca_file to the CA that signed it): %w", s.caDesc, err)
	case errors.As(err, &he):
		return fmt.Errorf("TLS: the server's certificate is not valid for %q (set tls.server_name to a name it holds): %w", s.tlsConf.ServerName, err)
	case errors.As(err, &ci):
		return fmt.Errorf("TLS: the server's certificate is invalid (expired or not for servers): %w", err)
	}
	return fmt.Errorf("TLS: %w", err)
}
