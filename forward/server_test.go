package forward

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
)

func TestDigestVectors(t *testing.T) {
	nonce := make([]byte, 16)
	auth := make([]byte, 16)
	for i := range 16 {
		nonce[i] = byte(i)
		auth[i] = byte(0x10 + i)
	}
	salt := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct{ name, got, want string }{
		{"ping", SharedKeyDigest(salt, "client.example", nonce, "secret"),
			"3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df"},
		{"pong", SharedKeyDigest(salt, "server.example", nonce, "secret"),
			"3389a63bef56054281d75fb7b05965b0d1b1ea9eba25b4594ed8e06a02e725af1fbf401cdbe697423c388ac1948566570a6f592284a536370ca36a5ccf88cbbd"},
		{"password", PasswordDigest(auth, "alice", "pw"),
			"175443d1726b2836999b8b7b54c1fcf0a2ec1071f20fbec9f6e0a7594cf70f208e7ed315db82d7e4f45981d04990e9b9b46ea8f69444a5cf5e25601d72aa83e5"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s digest: got %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}

func TestHandshakeMessagesRoundTrip(t *testing.T) {
	h := Helo{Nonce: []byte("0123456789abcdef"), Auth: []byte("fedcba9876543210"), Keepalive: true}
	if got, err := ParseHelo(AppendHelo(nil, h)); err != nil || !bytes.Equal(got.Nonce, h.Nonce) || !bytes.Equal(got.Auth, h.Auth) || !got.Keepalive {
		t.Errorf("HELO: %+v, %v", got, err)
	}
	// fluentd's own HELO without user auth sends auth as "" (a str).
	if got, err := ParseHelo(AppendHelo(nil, Helo{Nonce: h.Nonce})); err != nil || len(got.Auth) != 0 {
		t.Errorf("HELO without auth: %+v, %v", got, err)
	}
	p := NewPing(h, "client.example", []byte("salt"), "secret", "alice", "pw")
	if got, err := ParsePing(AppendPing(nil, p)); err != nil || got.Hostname != p.Hostname || got.SharedKeyDigest != p.SharedKeyDigest ||
		got.Username != "alice" || got.PasswordDigest != PasswordDigest(h.Auth, "alice", "pw") {
		t.Errorf("PING: %+v, %v", got, err)
	}
	pong := Pong{OK: true, Hostname: "server.example", SharedKeyDigest: SharedKeyDigest([]byte("salt"), "server.example", h.Nonce, "secret")}
	got, err := ParsePong(AppendPong(nil, pong))
	if err != nil || got != pong {
		t.Fatalf("PONG: %+v, %v", got, err)
	}
	if err := got.Verify([]byte("salt"), h.Nonce, "secret"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := got.Verify([]byte("salt"), h.Nonce, "wrong"); err == nil {
		t.Error("Verify accepted a PONG made with another key")
	}
	if _, err := ParsePing(AppendPong(nil, pong)); err == nil {
		t.Error("ParsePing accepted a PONG")
	}
	if _, err := ParsePing(arr(str("PING"), str("h"))); err == nil {
		t.Error("ParsePing accepted 2 elements")
	}
}

// handshake runs the client side of the handshake and returns the PONG.
func handshake(t *testing.T, c *client, hostname, key, user, pw string) (Pong, Helo) {
	t.Helper()
	v, err := c.readValue(5 * time.Second)
	if err != nil {
		t.Fatalf("read HELO: %v", err)
	}
	helo, err := ParseHelo(v)
	if err != nil {
		t.Fatalf("parse HELO: %v", err)
	}
	if len(helo.Nonce) != 16 || !helo.Keepalive {
		t.Fatalf("HELO: %+v", helo)
	}
	salt := []byte("0123456789abcdef0123456789abcdef")
	if err := c.send(AppendPing(nil, NewPing(helo, hostname, salt, key, user, pw)), 0); err != nil {
		t.Fatalf("send PING: %v", err)
	}
	v, err = c.readValue(5 * time.Second)
	if err != nil {
		t.Fatalf("read PONG: %v", err)
	}
	pong, err := ParsePong(v)
	if err != nil {
		t.Fatalf("parse PONG: %v", err)
	}
	if pong.OK {
		if err := pong.Verify(salt, helo.Nonce, key); err != nil {
			t.Fatalf("PONG does not verify: %v", err)
		}
	}
	return pong, helo
}

func TestHandshake(t *testing.T) {
	src := testSource()
	src.Security = &config.Security{SelfHostname: "server.example", SharedKey: "secret",
		UserAuth: true, Users: []config.User{{Username: "alice", Password: "pw"}, {Username: "bob", Password: "pw2"}}}
	coll := newCollector()
	ts := startServer(t, src, coll)

	t.Run("accepted", func(t *testing.T) {
		c := dial(t, ts.Addr())
		pong, helo := handshake(t, c, "client.example", "secret", "bob", "pw2")
		if !pong.OK || pong.Hostname != "server.example" || len(helo.Auth) != 16 {
			t.Fatalf("PONG %+v, HELO %+v", pong, helo)
		}
		c.send(cat(nilv(), arr(str("sec"), num(T0), r1, chunkOpt("s1"))), 0)
		if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("s1")) {
			t.Fatalf("ack: %x %v", a, err)
		}
		if ev := coll.take(); len(ev) != 1 || ev[0].Tag != "sec" {
			t.Fatalf("events: %+v", ev)
		}
	})
	for _, tc := range []struct{ name, key, user, pw, reason string }{
		{"wrong_shared_key", "guess", "alice", "pw", "shared_key mismatch"},
		{"wrong_password", "secret", "alice", "pw2", "username/password mismatch"},
		{"unknown_user", "secret", "mallory", "pw", "username/password mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.errCount(reasonAuthFailed)
			c := dial(t, ts.Addr())
			pong, _ := handshake(t, c, "client.example", tc.key, tc.user, tc.pw)
			if pong.OK || pong.Reason != tc.reason {
				t.Fatalf("PONG %+v, want refused with %q", pong, tc.reason)
			}
			c.expectClosed(5 * time.Second)
			if d := ts.errCount(reasonAuthFailed) - before; d != 1 {
				t.Errorf("auth_failed grew by %v", d)
			}
		})
	}
	t.Run("request_instead_of_ping", func(t *testing.T) {
		c := dial(t, ts.Addr())
		if _, err := c.readValue(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		c.send(arr(str("sneaky"), num(T0), r1, chunkOpt("x")), 0)
		v, err := c.readValue(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if pong, err := ParsePong(v); err != nil || pong.OK || pong.Reason != "invalid ping message" {
			t.Fatalf("got %+v, %v", pong, err)
		}
		c.expectClosed(5 * time.Second)
		if ev := coll.take(); len(ev) != 0 {
			t.Fatalf("ingested before the handshake: %+v", ev)
		}
	})
}

func TestHandshakeWithoutUserAuthSendsEmptyAuth(t *testing.T) {
	src := testSource()
	src.Security = &config.Security{SharedKey: "k"}
	ts := startServer(t, src, newCollector())
	c := dial(t, ts.Addr())
	pong, helo := handshake(t, c, "client.example", "k", "", "")
	if len(helo.Auth) != 0 || !pong.OK || pong.Hostname != "server.example" { // Hostname option is the default
		t.Fatalf("HELO %+v PONG %+v", helo, pong)
	}
}

// writeCerts makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, and writes them as PEM files.
func writeCerts(t *testing.T) (dir string, caPool *x509.CertPool, clientCert tls.Certificate) {
	t.Helper()
	dir = t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caPool = x509.NewCertPool()
	caPool.AddCert(ca)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srvDER, srvKey := issue("server", 2, x509.ExtKeyUsageServerAuth)
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write("server.crt", "CERTIFICATE", srvDER)
	write("server.key", "EC PRIVATE KEY", keyDER)
	write("ca.crt", "CERTIFICATE", caDER)
	cliDER, cliKey := issue("client", 3, x509.ExtKeyUsageClientAuth)
	clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return dir, caPool, clientCert
}

func TestTLS(t *testing.T) {
	dir, caPool, clientCert := writeCerts(t)
	src := testSource()
	src.TLS = &config.TLS{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
		CAFile: filepath.Join(dir, "ca.crt"), ClientAuth: "require"}
	coll := newCollector()
	ts := startServer(t, src, coll)

	send := func(cfg *tls.Config) error {
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer nc.Close()
		c := &client{t: t, nc: nc}
		if err := c.send(arr(str("tls"), num(T0), r1, chunkOpt("t1")), 0); err != nil {
			return err
		}
		a, err := c.readAck(5 * time.Second)
		if err != nil {
			return err
		}
		if !bytes.Equal(a, str("t1")) {
			return errors.New("wrong ack")
		}
		return nil
	}
	if err := send(&tls.Config{RootCAs: caPool, Certificates: []tls.Certificate{clientCert}}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if ev := coll.take(); len(ev) != 1 || ev[0].Tag != "tls" {
		t.Fatalf("events: %+v", ev)
	}
	before := ts.errCount(reasonTLSHandshake)
	if err := send(&tls.Config{RootCAs: caPool}); err == nil {
		t.Fatal("accepted a client without a certificate under client_auth require")
	}
	if err := send(&tls.Config{RootCAs: caPool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("accepted TLS 1.1")
	}
	testutil.WaitUntil(t, 5*time.Second, "2 more tls_handshake errors", func() bool { return ts.errCount(reasonTLSHandshake)-before >= 2 })
	if d := ts.errCount(reasonTLSHandshake) - before; d != 2 {
		t.Errorf("tls_handshake errors grew by %v, want 2", d)
	}
	// A load balancer's TCP health check connects and closes or resets
	// without a byte: quiet, not a handshake error.
	before = ts.errCount(reasonTLSHandshake)
	conns := metricValue(ts.m.connsTotal)
	for _, reset := range []bool{false, true} {
		nc, err := net.Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if reset {
			nc.(*net.TCPConn).SetLinger(0) // close sends RST
		}
		nc.Close()
	}
	// Both were served to their end (the error, if any, is counted before
	// the connection is let go).
	testutil.WaitUntil(t, 5*time.Second, "both health-check connections served", func() bool {
		return metricValue(ts.m.connsTotal)-conns == 2 && ts.openConns() == 0
	})
	if d := ts.errCount(reasonTLSHandshake) - before; d != 0 {
		t.Errorf("a health-check connect/close counted %v tls_handshake errors", d)
	}
	// A plain-text client gets nothing through.
	c := dial(t, ts.Addr())
	c.send(arr(str("plain"), num(T0), r1, chunkOpt("p")), 0)
	c.expectClosed(5 * time.Second)
	if ev := coll.take(); len(ev) != 0 {
		t.Fatalf("plain text ingested: %+v", ev)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	src := testSource()
	src.TLS = &config.TLS{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}
	if _, err := NewServer(ServerOptions{Config: src, Next: newCollector()}); err == nil {
		t.Fatal("NewServer accepted missing certificate files")
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwd.sock")
	// A stale socket file from a crashed run is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	src := testSource()
	src.Listen = "unix://" + path
	coll := newCollector()
	ts := startServer(t, src, coll)
	if ts.Addr().Network() != "unix" || ts.udp != nil {
		t.Fatalf("addr %v, udp %v", ts.Addr(), ts.udp)
	}
	c := dial(t, ts.Addr())
	c.send(arr(str("unix"), num(T0), r1, chunkOpt("u")), 0)
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("u")) {
		t.Fatalf("ack %x %v", a, err)
	}
	if ev := coll.take(); len(ev) != 1 {
		t.Fatalf("events %+v", ev)
	}
	// A second server on the same live socket is refused.
	src2 := src
	src2.Name = "other"
	if _, err := NewServer(ServerOptions{Config: src2, Next: coll}); err == nil || !strings.Contains(err.Error(), "listening") {
		t.Fatalf("second server on a live socket: %v", err)
	}
	c.nc.Close()
	ts.stop()
	if err := <-ts.done; err != nil {
		t.Fatal(err)
	}
	ts.done <- nil
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
	// A regular file in the way is not removed.
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(ServerOptions{Config: src2, Next: coll}); err == nil {
		t.Fatal("listened over a regular file")
	}
}

func TestUDPHeartbeat(t *testing.T) {
	ts := startServer(t, testSource(), newCollector())
	port := ts.Addr().(*net.TCPAddr).Port
	uc, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for i := range 3 {
		if _, err := uc.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		uc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		n, err := uc.Read(buf)
		if err != nil || n != 1 || buf[0] != 0 {
			t.Fatalf("heartbeat %d: %x, %v", i, buf[:n], err)
		}
	}
	if v := metricValue(ts.m.heartbeatsUDP); v != 3 {
		t.Errorf("udp_heartbeats_total %v", v)
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestIdleTimeout(t *testing.T) {
	src := testSource()
	src.IdleTimeout = config.Duration(100 * time.Millisecond)
	ts := startServer(t, src, newCollector())
	c := dial(t, ts.Addr())
	c.send(arr(str("idle"), num(T0), r1, chunkOpt("i")), 0)
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("i")) {
		t.Fatalf("ack %x %v", a, err)
	}
	start := time.Now()
	c.expectClosed(5 * time.Second)
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", time.Since(start))
	}
	ts.waitConns(t, 0)
	if v := ts.errCount(reasonIdleTimeout); v != 1 {
		t.Errorf("idle_timeout %v", v)
	}
}

func TestIdleTimeoutOffByDefault(t *testing.T) {
	ts := startServer(t, testSource(), newCollector())
	c := dial(t, ts.Addr())
	if v, err := c.readValue(300 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("idle connection: %x %v", v, err)
	}
	c.send(arr(str("late"), num(T0), r1, chunkOpt("l")), 0)
	if _, err := c.readAck(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestMaxConnections(t *testing.T) {
	src := testSource()
	src.MaxConnections = 1
	ts := startServer(t, src, newCollector())
	a := dial(t, ts.Addr())
	a.send(arr(str("a"), num(T0), r1, chunkOpt("a")), 0)
	if _, err := a.readAck(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b := dial(t, ts.Addr()) // completes in the kernel backlog
	b.send(arr(str("b"), num(T0), r1, chunkOpt("b")), 0)
	if v, err := b.readValue(200 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("second connection served over max_connections: %x %v", v, err)
	}
	if ts.openConns() != 1 || ts.errCount(reasonMaxConnections) < 1 {
		t.Fatalf("open %v, max_connections %v", ts.openConns(), ts.errCount(reasonMaxConnections))
	}
	a.nc.Close()
	if ack, err := b.readAck(5 * time.Second); err != nil || !bytes.Equal(ack, str("b")) {
		t.Fatalf("after a slot freed: %x %v", ack, err)
	}
}

func TestSourceKeys(t *testing.T) {
	src := testSource()
	src.SourceAddressKey = "source_ip"
	src.SourceHostnameKey = "source_host"
	coll := newCollector()
	ts := startServer(t, src, coll)
	c := dial(t, ts.Addr())
	record := rec("log", "x", "source_ip", "spoofed")
	c.send(arr(str("k"), arr(entry(num(T0), record), entry(num(T0), rec("log", "y"))), chunkOpt("k")), 0)
	if _, err := c.readAck(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	host := "127.0.0.1"
	if names, err := net.DefaultResolver.LookupAddr(context.Background(), host); err == nil && len(names) > 0 {
		host = strings.TrimSuffix(names[0], ".")
	}
	ev := coll.take()
	want := []map[string]string{
		{"log": "x", "source_ip": "127.0.0.1", "source_host": host},
		{"log": "y", "source_ip": "127.0.0.1", "source_host": host},
	}
	if len(ev) != 2 {
		t.Fatalf("events %+v", ev)
	}
	for i, e := range ev {
		got := map[string]string{}
		err := msgpack.MapEach(e.Record, 8, func(k, v []byte) error {
			ks, _, _ := msgpack.ReadStr(k)
			vs, _, _ := msgpack.ReadStr(v)
			if _, dup := got[string(ks)]; dup {
				return errors.New("duplicate key " + string(ks))
			}
			got[string(ks)] = string(vs)
			return nil
		})
		if err != nil || len(got) != len(want[i]) {
			t.Fatalf("record %d: %v %v", i, got, err)
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("record %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
}

// blockingConsumer blocks in Consume until released or its context ends.
type blockingConsumer struct {
	entered chan *event.Batch
	release chan struct{}
	coll    *collector
}

func (b *blockingConsumer) Consume(ctx context.Context, batch *event.Batch) error {
	b.entered <- batch
	select {
	case <-b.release:
		return b.coll.Consume(ctx, batch)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runQuietServer runs a server with shutdown_quiet quiet until cancel is
// called (graceful shutdown); done receives Run's result. edit, if not nil,
// changes the source config first.
func runQuietServer(t *testing.T, quiet time.Duration, next event.Consumer, edit func(*config.Source)) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	src := testSource()
	src.ShutdownQuiet = config.Duration(quiet)
	if edit != nil {
		edit(&src)
	}
	s, err := NewServer(ServerOptions{Config: src, Next: next, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); s.Close() })
	return s, cancel, done
}

func TestGracefulShutdown(t *testing.T) {
	bc := &blockingConsumer{entered: make(chan *event.Batch, 4), release: make(chan struct{}), coll: newCollector()}
	s, cancel, done := runQuietServer(t, 200*time.Millisecond, bc, nil)

	busy := dial(t, s.Addr())
	idle := dial(t, s.Addr())
	// Two pipelined requests: the first is processing when shutdown starts.
	busy.send(cat(arr(str("one"), num(T0), r1, chunkOpt("1")), arr(str("two"), num(T0), r1, chunkOpt("2"))), 0)
	<-bc.entered
	idle.send(nilv(), 0)
	cancel()
	// The idle connection is closed once quiet; new connections are refused.
	idle.expectClosed(5 * time.Second)
	testutil.WaitUntil(t, 5*time.Second, "new connections refused after shutdown started", func() bool {
		nc, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned while a request was processing: %v", err)
	default:
	}
	close(bc.release)
	// Both requests the client wrote before it learnt of the stop are
	// stored and acked, in order.
	for _, want := range []string{"1", "2"} {
		if a, err := busy.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str(want)) {
			t.Fatalf("request %s was not acked: %x %v", want, a, err)
		}
	}
	busy.expectClosed(5 * time.Second)
	waitRunReturned(t, done, "the stop")
	if ev := bc.coll.take(); len(ev) != 2 || ev[0].Tag != "one" || ev[1].Tag != "two" {
		t.Fatalf("events %+v", ev)
	}
}

// TestShutdownReadsUntilQuiet: after shutdown starts, a connection that
// keeps writing is read on (Docker's driver writes until it notices the
// closed connection) and closed once it has been quiet for shutdown_quiet;
// everything it wrote before is handed on.
func TestShutdownReadsUntilQuiet(t *testing.T) {
	coll := newCollector()
	s, cancel, done := runQuietServer(t, 2*time.Second, coll, nil)
	c := dial(t, s.Addr())
	c.send(arr(str("t"), num(T0), rec("n", "0")), 0)
	coll.waitCount(t, 1, 5*time.Second)
	cancel()
	start := time.Now()
	const n = 20
	for i := 1; i < n; i++ {
		if err := c.send(arr(str("t"), num(T0), rec("n", fmt.Sprint(i))), 0); err != nil {
			t.Fatalf("write %d after shutdown started: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A request with an ack, as the last one: acked although the server
	// is stopping.
	c.send(arr(str("t"), num(T0), rec("n", "last"), chunkOpt("z")), 0)
	if a, err := c.readAck(10 * time.Second); err != nil || !bytes.Equal(a, str("z")) {
		t.Fatalf("ack %x %v", a, err)
	}
	c.expectClosed(10 * time.Second)
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("closed %v after shutdown started, before it had been quiet for 2s", took)
	}
	waitRunReturned(t, done, "the stop")
	if got := coll.count(); got != n+1 {
		t.Fatalf("%d events stored, want %d", got, n+1)
	}
}

// TestShutdownTakesBacklog: a connection the kernel established but the
// server had not accepted yet when shutdown started (here: max_connections
// was reached) is still accepted and read; what its client wrote is stored.
func TestShutdownTakesBacklog(t *testing.T) {
	coll := newCollector()
	s, cancel, done := runQuietServer(t, 300*time.Millisecond, coll, func(src *config.Source) { src.MaxConnections = 1 })
	first := dial(t, s.Addr())
	first.send(arr(str("t"), num(T0), rec("n", "first")), 0)
	coll.waitCount(t, 1, 5*time.Second)
	waiting := dial(t, s.Addr()) // in the listen backlog: the one slot is taken
	waiting.send(arr(str("t"), num(T0), rec("n", "waiting")), 0)
	cancel()
	// first goes quiet and ends, the slot frees, waiting is taken and read.
	coll.waitCount(t, 2, 10*time.Second)
	waiting.expectClosed(10 * time.Second)
	waitRunReturned(t, done, "the stop")
	if ev := coll.take(); len(ev) != 2 || !bytes.Contains(ev[1].Record, []byte("waiting")) {
		t.Fatalf("events %+v", ev)
	}
}

// TestShutdownResetsClientsThatDoNotRead: a connection that never asked
// for an ack (Docker's driver in its default mode: it connects when the
// container starts and never reads) is reset, not closed with a FIN, when
// the stopping server ends it; so the client's next write fails and is
// resent instead of going into a closed connection, where it would be lost
// although the write succeeded. A connection that owes acks ends with a FIN
// after its acks (its client reads them, then the end). Idle connections
// closed by idle_timeout are reset the same way.
func TestShutdownResetsClientsThatDoNotRead(t *testing.T) {
	coll := newCollector()
	s, cancel, done := runQuietServer(t, 100*time.Millisecond, coll, nil)
	silent := dial(t, s.Addr()) // connected, nothing written yet
	sent := dial(t, s.Addr())   // wrote without ack, then quiet
	acked := dial(t, s.Addr())  // asked for an ack
	sent.send(arr(str("t"), num(T0), rec("n", "sent")), 0)
	acked.send(arr(str("t"), num(T0), rec("n", "acked"), chunkOpt("a")), 0)
	if a, err := acked.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("a")) {
		t.Fatalf("ack %x %v", a, err)
	}
	coll.waitCount(t, 2, 5*time.Second)
	cancel()
	waitRunReturned(t, done, "the stop")
	for name, c := range map[string]*client{"silent": silent, "sent": sent} {
		if err := c.send(arr(str("t"), num(T0), rec("n", "next")), 0); err == nil {
			t.Errorf("%s connection: the write after the server ended it succeeded (into a closed connection: lost)", name)
		}
	}
	if v, err := acked.readValue(5 * time.Second); err != io.EOF {
		t.Errorf("connection with acks: %x %v, want the end of the stream", v, err)
	}

	src := testSource()
	src.IdleTimeout = config.Duration(50 * time.Millisecond)
	ts := startServer(t, src, newCollector())
	idle := dial(t, ts.Addr())
	testutil.WaitUntil(t, 5*time.Second, "the idle connection closed", func() bool { return ts.errCount(reasonIdleTimeout) == 1 })
	ts.waitConns(t, 0)
	if err := idle.send(arr(str("t"), num(T0), rec("n", "late")), 0); err == nil {
		t.Error("idle_timeout: the write after the server ended the connection succeeded")
	}
}

// TestShutdownRefusesNewConnections: from the moment a server starts
// stopping, the kernel establishes no new connection on its listener (its
// client could write into one that the server closes before it takes it):
// a TCP client's connect goes unanswered until the listener closes (Linux),
// a unix socket's path is gone. The stop refuses new connections before it
// ends the quiet ones, so once a quiet client was reset, a new one cannot
// connect.
func TestShutdownRefusesNewConnections(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			if network == "tcp" && runtime.GOOS != "linux" {
				t.Skip("socket filters are Linux only")
			}
			s, cancel, done := runQuietServer(t, 100*time.Millisecond, newCollector(), func(src *config.Source) {
				if network == "unix" {
					src.Listen = "unix://" + filepath.Join(t.TempDir(), "f.sock")
				}
			})
			silent := dial(t, s.Addr())
			time.Sleep(150 * time.Millisecond) // quiet for longer than shutdown_quiet: ended at once
			cancel()
			if v, err := silent.readValue(5 * time.Second); err == nil || isTimeout(err) {
				t.Fatalf("quiet connection not ended by the stop: %x %v", v, err)
			}
			if nc, err := net.DialTimeout(s.Addr().Network(), s.Addr().String(), 200*time.Millisecond); err == nil {
				nc.Close()
				t.Fatal("a new connection was established after the server started stopping")
			}
			waitRunReturned(t, done, "the stop")
		})
	}
}

func TestCloseCancelsConsume(t *testing.T) {
	bc := &blockingConsumer{entered: make(chan *event.Batch, 4), release: make(chan struct{}), coll: newCollector()}
	s, err := NewServer(ServerOptions{Config: testSource(), Next: bc, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	c := dial(t, s.Addr())
	c.send(arr(str("x"), num(T0), r1, chunkOpt("x")), 0)
	<-bc.entered
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	c.expectClosed(5 * time.Second) // and no ack
	s.Close()
}

func TestLifecycleEdges(t *testing.T) {
	// Close before Run: Run returns at once.
	s, err := NewServer(ServerOptions{Config: testSource(), Next: newCollector()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
	// Run with a context already done returns.
	s2, err := NewServer(ServerOptions{Config: testSource(), Next: newCollector()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	// No consumer, no limits: refused.
	if _, err := NewServer(ServerOptions{Config: testSource()}); err == nil {
		t.Fatal("accepted a nil consumer")
	}
	if _, err := NewServer(ServerOptions{Config: config.Source{Name: "x", Listen: "127.0.0.1:0"}, Next: newCollector()}); err == nil {
		t.Fatal("accepted zero limits")
	}
}

func TestBindErrorAndSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := testSource()
	a.Name = "a"
	sa, err := NewServer(ServerOptions{Config: a, Next: newCollector(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	b := testSource()
	b.Name = "b"
	sb, err := NewServer(ServerOptions{Config: b, Next: newCollector(), Registerer: reg})
	if err != nil {
		t.Fatalf("second server on one registry: %v", err)
	}
	defer sb.Close()
	taken := testSource()
	taken.Name = "c"
	taken.Listen = sa.Addr().String()
	if _, err := NewServer(ServerOptions{Config: taken, Next: newCollector(), Registerer: reg}); err == nil {
		t.Fatal("bound an address in use")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"maruta_forward_connections", "maruta_forward_connections_total", "maruta_forward_requests_total",
		"maruta_forward_events_total", "maruta_forward_received_bytes_total", "maruta_forward_acks_total",
		"maruta_forward_errors_total", "maruta_forward_invalid_events_total", "maruta_forward_udp_heartbeats_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

// TestLargeRequestInSmallWrites sends an 8 MiB PackedForward request in
// 4 KiB writes, pipelined with a small request.
func TestLargeRequestInSmallWrites(t *testing.T) {
	coll := newCollector()
	ts := startServer(t, testSource(), coll)
	record := dockerRecord(200)
	var payload []byte
	n := 0
	for len(payload) < 8<<20 {
		payload = append(payload, entry(et(T0, int64(n)), record)...)
		n++
	}
	req := cat(arr(str("big"), bin(payload), chunkOpt("big")), arr(str("small"), num(T0), r1, chunkOpt("small")))
	c := dial(t, ts.Addr())
	go c.send(req, 4096)
	for _, want := range []string{"big", "small"} {
		if a, err := c.readAck(20 * time.Second); err != nil || !bytes.Equal(a, str(want)) {
			t.Fatalf("ack %s: %x %v", want, a, err)
		}
	}
	ev := coll.take()
	if len(ev) != n+1 {
		t.Fatalf("got %d events, want %d", len(ev), n+1)
	}
	for i := range n {
		if ev[i].Time != at(T0, int64(i)) || !bytes.Equal(ev[i].Record, record) {
			t.Fatalf("event %d differs", i)
		}
	}
}

func TestDedup(t *testing.T) {
	src := testSource()
	src.Dedup = &config.Dedup{Window: config.Duration(time.Minute), MaxEntries: 100}
	coll := newCollector()
	ts := startServer(t, src, coll)
	c := dial(t, ts.Addr())
	req := arr(str("d"), arr(entry(num(T0), r1), entry(num(T0), r2)), chunkOpt("same-id"))
	for i := range 3 {
		c.send(req, 0)
		if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("same-id")) {
			t.Fatalf("ack %d: %x %v", i, a, err)
		}
	}
	// A resend on another connection is caught too; other ids go through.
	c2 := dial(t, ts.Addr())
	c2.send(cat(req, arr(str("d"), num(T0), r1, chunkOpt("other-id"))), 0)
	for _, want := range []string{"same-id", "other-id"} {
		if a, err := c2.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str(want)) {
			t.Fatalf("ack %s: %x %v", want, a, err)
		}
	}
	if ev := coll.take(); len(ev) != 3 {
		t.Fatalf("got %d events, want 3", len(ev))
	}
	if v := metricValue(ts.m.duplicates); v != 6 {
		t.Errorf("duplicate_events_total %v, want 6", v)
	}
}

// TestBatchedReads: a busy connection without acks reads in batches (a
// raised SO_RCVLOWAT, read.go); the lines below the mark are still read —
// the last line of a burst arrives without the client sending more, and a
// burst cut by a shutdown is stored whole; a connection that asks for an
// ack stops batching and gets its acks.
func TestBatchedReads(t *testing.T) {
	coll := newCollector()
	s, cancel, done := runQuietServer(t, 300*time.Millisecond, coll, nil)
	c := dial(t, s.Addr())
	line := func(i int) []byte { return arr(str("docker.app"), num(T0), rec("log", fmt.Sprint(i))) }
	n := 0
	burst := func(k int) {
		for range k {
			n++
			if err := c.send(line(n), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	burst(500)
	coll.waitCount(t, n, 5*time.Second) // the tail is below the mark
	burst(1)
	coll.waitCount(t, n, 5*time.Second) // a lone line after a burst
	acked := dial(t, s.Addr())
	for i := range 50 {
		acked.send(arr(str("acked"), num(T0), r1, chunkOpt(fmt.Sprint(i))), 0)
		if a, err := acked.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str(fmt.Sprint(i))) {
			t.Fatalf("ack %d: %x %v", i, a, err)
		}
	}
	burst(500)
	cancel() // the burst is still arriving
	waitRunReturned(t, done, "the stop")
	if got := coll.count(); got != n+50 {
		t.Fatalf("%d events stored, want %d", got, n+50)
	}
}
