package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/marutalog/maruta/internal/msgpack"
)

// Client defaults, used when the matching ClientOptions field is zero.
const (
	DefaultClientConnectTimeout = 10 * time.Second
	DefaultClientSendTimeout    = 60 * time.Second
	DefaultClientAckTimeout     = 60 * time.Second
)

// Errors a Client returns, to be tested with errors.Is. Every error of a
// Client is an *OpError naming the step that failed.
var (
	// ErrAuth: the server refused the handshake (shared key, username or
	// password), its PONG did not prove that it knows the shared key, or it
	// asked for the handshake while the client has no security configured.
	ErrAuth = errors.New("authentication failed")
	// ErrAckTimeout: no ack arrived within the ack timeout.
	ErrAckTimeout = errors.New("no ack within the ack timeout")
	// ErrAckMismatch: the server acked another chunk than the one sent.
	ErrAckMismatch = errors.New("ack for another chunk")
)

// Client operations, the Op of an OpError.
const (
	OpConnect   = "connect"   // dialing (DNS, TCP, unix socket)
	OpTLS       = "tls"       // the TLS handshake
	OpHandshake = "handshake" // HELO/PING/PONG
	OpSend      = "send"      // writing a request
	OpAck       = "ack"       // waiting for and reading an ack
)

// OpError is the error of a Client operation: Op is one of the Op*
// constants, Addr the server address, Err the cause.
type OpError struct {
	Op   string
	Addr string
	Err  error
}

func (e *OpError) Error() string { return "forward " + e.Op + " " + e.Addr + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// ClientSecurity are the credentials of the shared-key handshake (fluentd's
// <security> section on the client side).
type ClientSecurity struct {
	SharedKey string
	// SelfHostname is the name sent in PING. Default: os.Hostname.
	SelfHostname string
	// Username and Password answer a server that checks users (its HELO
	// carries an auth salt); ignored otherwise.
	Username string
	Password string
}

// ClientOptions configure Dial.
type ClientOptions struct {
	// Address is host:port for TCP or unix:///path for a unix socket. A host
	// name is resolved on every Dial, so a reconnect follows DNS changes.
	Address string
	// TLS, when not nil, runs TLS over a TCP connection (unix sockets stay
	// plain). An empty ServerName is set to the host of Address, which the
	// server certificate is then checked against (DNS name or IP address).
	TLS *tls.Config
	// Security, when not nil, answers the server's HELO before any request.
	Security *ClientSecurity
	// ConnectTimeout bounds Dial: connect, TLS and the handshake.
	ConnectTimeout time.Duration
	// SendTimeout bounds writing one request.
	SendTimeout time.Duration
	// AckTimeout bounds waiting for one ack.
	AckTimeout time.Duration
	// KeepAlive is the TCP keep-alive period: 0 uses Go's default (15s),
	// negative turns keep-alive probes off.
	KeepAlive time.Duration
}

// Client is one client connection speaking the Forward protocol to a
// server (fluentd out_forward's role): made by Dial, it sends requests and
// reads acks, in order.
//
// A Client is used by one goroutine at a time. After any error the
// connection is in an unknown state (a request may be half written, an ack
// may still arrive): Close it and Dial again. Close may be called from
// another goroutine to abort a blocked call.
type Client struct {
	o    ClientOptions
	addr string
	nc   net.Conn
	raw  net.Conn // the socket under TLS (nc without TLS)
	helo *Helo    // nil without security

	buf  []byte // buf[r:w] holds bytes read and not yet consumed
	r, w int
	fr   framer
	out  []byte // handshake and probe messages

	broken atomic.Bool
	closed atomic.Bool
}

// newSalt returns a PING's shared_key_salt: 16 random bytes as 32 hex
// characters, like fluentd's. Tests replace it to check known vectors.
var newSalt = func() []byte {
	var raw [16]byte
	rand.Read(raw[:])
	return []byte(hex.EncodeToString(raw[:]))
}

// replyLimit bounds one server message (ack, HELO, PONG).
const replyLimit = 64 << 10

// Dial connects to o.Address, runs TLS and the handshake as configured, and
// returns a Client ready to send. ctx bounds Dial together with
// ConnectTimeout.
func Dial(ctx context.Context, o ClientOptions) (*Client, error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultClientConnectTimeout
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultClientSendTimeout
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultClientAckTimeout
	}
	network, address := splitAddress(o.Address)
	c := &Client{o: o, addr: o.Address, fr: newFramer(replyLimit, handshakeDepth)}
	ctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: o.KeepAlive}
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, c.opErr(OpConnect, err)
	}
	c.nc, c.raw = nc, nc
	// Everything below is bounded by ctx: a deadline on the socket, and an
	// immediate one when ctx is cancelled. The raw connection is watched,
	// not c.nc, which TLS replaces below while the watch may fire (a race
	// -race found when a sink closed during a heartbeat's dial); its
	// deadline bounds the TLS connection on it too.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if o.TLS != nil && network != "unix" {
		tc := o.TLS
		if tc.ServerName == "" {
			tc = tc.Clone()
			if host, _, err := net.SplitHostPort(address); err == nil {
				tc.ServerName = host
			}
		}
		tconn := tls.Client(nc, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, c.opErr(OpTLS, c.ctxErr(ctx, err))
		}
		c.nc = tconn
	}
	if o.Security != nil {
		if err := c.handshake(ctx); err != nil {
			c.nc.Close()
			return nil, err
		}
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

// splitAddress turns an Address into a network and a dial address.
func splitAddress(a string) (network, address string) {
	if p, ok := strings.CutPrefix(a, "unix://"); ok {
		return "unix", p
	}
	return "tcp", a
}

func (c *Client) opErr(op string, err error) error {
	return &OpError{Op: op, Addr: c.addr, Err: err}
}

// watch sets an immediate deadline on the connection when ctx is done, so
// a blocked read or write returns. The returned func stops watching.
func (c *Client) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
}

// ctxErr prefers ctx's error over the timeout it caused.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%w (%v)", cerr, err)
		}
		return cerr
	}
	return err
}

// handshake answers HELO with PING and checks the PONG.
func (c *Client) handshake(ctx context.Context) error {
	sec := c.o.Security
	v, err := c.readMsg()
	if err != nil {
		// The connection's deadline and ctx's may fire in either order: a
		// timeout is "no HELO" unless ctx was cancelled.
		if isTimeoutErr(err) && !errors.Is(ctx.Err(), context.Canceled) {
			err = fmt.Errorf("no HELO from the server within the connect timeout (is security configured on the server?): %w", err)
		}
		return c.opErr(OpHandshake, c.ctxErr(ctx, err))
	}
	helo, err := ParseHelo(v)
	if err != nil {
		return c.opErr(OpHandshake, err)
	}
	// v points into the read buffer, which the PONG overwrites.
	helo.Nonce, helo.Auth = bytes.Clone(helo.Nonce), bytes.Clone(helo.Auth)
	host := sec.SelfHostname
	if host == "" {
		host, _ = os.Hostname()
	}
	salt := newSalt()
	c.out = AppendPing(c.out[:0], NewPing(helo, host, salt, sec.SharedKey, sec.Username, sec.Password))
	if _, err := c.nc.Write(c.out); err != nil {
		return c.opErr(OpHandshake, c.ctxErr(ctx, err))
	}
	v, err = c.readMsg()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("server closed the connection after PING: %w", err)
		}
		return c.opErr(OpHandshake, c.ctxErr(ctx, err))
	}
	pong, err := ParsePong(v)
	if err != nil {
		return c.opErr(OpHandshake, err)
	}
	if err := pong.Verify(salt, helo.Nonce, sec.SharedKey); err != nil {
		return c.opErr(OpHandshake, fmt.Errorf("%w: %v", ErrAuth, err))
	}
	c.helo = &helo
	return nil
}

// readMsg reads one msgpack value from the server. The result is valid
// until the next read.
func (c *Client) readMsg() ([]byte, error) {
	c.fr.reset()
	for {
		if c.r < c.w {
			n, err := c.fr.next(c.buf[c.r:c.w])
			if err != nil {
				return nil, fmt.Errorf("read reply: %w", err)
			}
			if n > 0 {
				v := c.buf[c.r : c.r+n]
				c.r += n
				return v, nil
			}
		} else {
			c.r, c.w = 0, 0
		}
		if c.w == len(c.buf) {
			if c.r > 0 {
				c.w = copy(c.buf, c.buf[c.r:c.w])
				c.r = 0
			} else {
				nb := make([]byte, max(2*len(c.buf), 512))
				copy(nb, c.buf[:c.w])
				c.buf = nb
			}
		}
		k, err := c.nc.Read(c.buf[c.w:])
		c.w += k
		if err != nil && k == 0 {
			return nil, err
		}
	}
}

// Handshaken reports whether the shared-key handshake ran, and the
// server's HELO if it did.
func (c *Client) Handshaken() (Helo, bool) {
	if c.helo == nil {
		return Helo{}, false
	}
	return *c.helo, true
}

// ServerKeepalive reports whether the server keeps the connection open
// between requests: the HELO's keepalive flag with security, true
// otherwise.
func (c *Client) ServerKeepalive() bool { return c.helo == nil || c.helo.Keepalive }

// RemoteAddr returns the address of the server end.
func (c *Client) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Send writes one complete request (e.g. from RequestEncoder.Encode),
// bounded by ctx and SendTimeout.
func (c *Client) Send(ctx context.Context, req []byte) error {
	if c.broken.Load() {
		return c.opErr(OpSend, errors.New("connection failed earlier"))
	}
	stop := c.watch(ctx)
	defer stop()
	c.nc.SetWriteDeadline(deadline(ctx, c.o.SendTimeout))
	if _, err := c.nc.Write(req); err != nil {
		c.broken.Store(true)
		return c.opErr(OpSend, c.ctxErr(ctx, err))
	}
	return nil
}

// PeerClosed reports whether the connection can no longer carry a request
// cleanly: it failed earlier, or the server closed it or sent something
// unasked (a peek at the socket, which consumes nothing, finds EOF, an
// error or bytes). A pool checks it before reusing an idle connection: a
// request written to a connection the server had already closed fails
// the way a request lost in flight does, and the sender could not tell
// that the server never read it.
func (c *Client) PeerClosed() bool {
	if c.broken.Load() || c.r < c.w {
		return true
	}
	return peerClosed(c.raw)
}

// ReadAck reads the next reply, which must be an {"ack": chunk} map, and
// returns the raw msgpack value of chunk (valid until the next call). It
// waits at most AckTimeout and as long as ctx allows. Replies come in
// request order, so requests may be pipelined: Send several, then ReadAck
// as many times.
func (c *Client) ReadAck(ctx context.Context) ([]byte, error) {
	if c.broken.Load() {
		return nil, c.opErr(OpAck, errors.New("connection failed earlier"))
	}
	stop := c.watch(ctx)
	defer stop()
	c.nc.SetReadDeadline(deadline(ctx, c.o.AckTimeout))
	v, err := c.readMsg()
	if err != nil {
		c.broken.Store(true)
		if ctx.Err() == nil && isTimeoutErr(err) {
			err = fmt.Errorf("%w (%s)", ErrAckTimeout, c.o.AckTimeout)
		} else if errors.Is(err, io.EOF) {
			err = fmt.Errorf("server closed the connection without an ack: %w", io.ErrUnexpectedEOF)
		}
		return nil, c.opErr(OpAck, c.ctxErr(ctx, err))
	}
	if msgpack.Peek(v) == msgpack.Array {
		// A server that wants the handshake sends HELO first, or answers
		// an unexpected request with a failed PONG.
		c.broken.Store(true)
		if _, err := ParseHelo(v); err == nil {
			return nil, c.opErr(OpAck, fmt.Errorf("%w: the server asks for the shared-key handshake (configure security)", ErrAuth))
		}
		if p, err := ParsePong(v); err == nil {
			return nil, c.opErr(OpAck, fmt.Errorf("%w: %s", ErrAuth, p.Reason))
		}
	}
	chunk, err := ParseAck(v)
	if err != nil {
		c.broken.Store(true)
		return nil, c.opErr(OpAck, err)
	}
	return chunk, nil
}

// SendAcked sends a request carrying the chunk option chunk (a str) and
// waits for its ack.
func (c *Client) SendAcked(ctx context.Context, req []byte, chunk string) error {
	if err := c.Send(ctx, req); err != nil {
		return err
	}
	got, err := c.ReadAck(ctx)
	if err != nil {
		return err
	}
	if s, rest, err := msgpack.ReadStr(got); err != nil || len(rest) != 0 || string(s) != chunk {
		c.broken.Store(true)
		return c.opErr(OpAck, fmt.Errorf("%w: sent %q, got %x", ErrAckMismatch, chunk, got))
	}
	return nil
}

// Heartbeat writes a msgpack nil, the in-band heartbeat servers ignore. It
// keeps idle timers of load balancers from closing the connection.
func (c *Client) Heartbeat(ctx context.Context) error {
	return c.Send(ctx, []byte{0xc0})
}

// Probe checks end to end that the server reads requests and answers:
// it sends a PackedForward request with no events and a random chunk
// option, and waits for its ack. Servers ingest nothing from it.
func (c *Client) Probe(ctx context.Context) error {
	id := "probe-" + NewChunkID()
	c.out = AppendPackedForward(c.out[:0], "maruta.probe", nil, Options{Chunk: id})
	return c.SendAcked(ctx, c.out, id)
}

// Close closes the connection. Safe to call more than once and
// concurrently with other methods, which then fail.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.broken.Store(true)
	return c.nc.Close()
}

// deadline is now+d, or ctx's deadline when that is earlier.
func deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ProbeTCP checks that a Forward server accepts connections: it connects
// to address (host:port or unix:///path) and closes at once, as fluentd's
// tcp heartbeat does. A server that is stopped but whose kernel still
// accepts connections passes; Client.Probe does not.
func ProbeTCP(ctx context.Context, address string, timeout time.Duration) error {
	network, addr := splitAddress(address)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return &OpError{Op: OpConnect, Addr: address, Err: err}
	}
	return nc.Close()
}

// ProbeUDP sends fluentd's UDP heartbeat (one 0x00 byte) to the UDP port
// of a Forward server (host:port) and waits up to timeout for its reply.
func ProbeUDP(ctx context.Context, address string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "udp", address)
	if err != nil {
		return &OpError{Op: OpConnect, Addr: address, Err: err}
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := nc.Write([]byte{0}); err != nil {
		return &OpError{Op: OpSend, Addr: address, Err: err}
	}
	var b [16]byte
	if _, err := nc.Read(b[:]); err != nil {
		if isTimeoutErr(err) {
			err = fmt.Errorf("no UDP heartbeat reply within %s", timeout)
		}
		return &OpError{Op: OpAck, Addr: address, Err: err}
	}
	return nil
}
