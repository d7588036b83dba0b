package forward

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
)

// The vectors of the handshake (issue 2), checked from the client's side:
// the PING the Client builds and its check of the PONG.
func TestClientHandshakeVectors(t *testing.T) {
	nonce, auth := make([]byte, 16), make([]byte, 16)
	for i := range 16 {
		nonce[i], auth[i] = byte(i), byte(0x10+i)
	}
	const (
		pingVector = "3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df"
		pongVector = "3389a63bef56054281d75fb7b05965b0d1b1ea9eba25b4594ed8e06a02e725af1fbf401cdbe697423c388ac1948566570a6f592284a536370ca36a5ccf88cbbd"
		pwVector   = "175443d1726b2836999b8b7b54c1fcf0a2ec1071f20fbec9f6e0a7594cf70f208e7ed315db82d7e4f45981d04990e9b9b46ea8f69444a5cf5e25601d72aa83e5"
	)
	saved := newSalt
	newSalt = func() []byte { return []byte("0123456789abcdef0123456789abcdef") }
	defer func() { newSalt = saved }()

	for _, tc := range []struct {
		name       string
		pongDigest string
		wantErr    bool
	}{
		{"pong_verifies", pongVector, false},
		{"pong_with_wrong_digest", strings.Repeat("0", 128), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			pings := make(chan Ping, 1)
			errs := make(chan error, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					errs <- err
					return
				}
				defer nc.Close()
				c := &client{t: t, nc: nc}
				nc.Write(AppendHelo(nil, Helo{Nonce: nonce, Auth: auth, Keepalive: true}))
				v, err := c.readValue(5 * time.Second)
				if err != nil {
					errs <- err
					return
				}
				p, err := ParsePing(v)
				if err != nil {
					errs <- err
					return
				}
				pings <- p
				nc.Write(AppendPong(nil, Pong{OK: true, Hostname: "server.example", SharedKeyDigest: tc.pongDigest}))
				c.expectClosed(5 * time.Second)
				errs <- nil
			}()
			cl, err := Dial(context.Background(), ClientOptions{Address: ln.Addr().String(), ConnectTimeout: 5 * time.Second,
				Security: &ClientSecurity{SharedKey: "secret", SelfHostname: "client.example", Username: "alice", Password: "pw"}})
			if tc.wantErr {
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("Dial with a PONG that does not verify: %v, want ErrAuth", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				if h, ok := cl.Handshaken(); !ok || !bytes.Equal(h.Nonce, nonce) || !cl.ServerKeepalive() {
					t.Errorf("HELO seen by the client: %+v %v", h, ok)
				}
				cl.Close()
			}
			// The fake server reports exactly once, after it saw the PING
			// (or failed before); only then is the PING looked at, so the
			// order of the two channels cannot decide the outcome.
			if err := <-errs; err != nil {
				t.Fatalf("fake server: %v", err)
			}
			select {
			case p := <-pings:
				if p.Hostname != "client.example" || string(p.SharedKeySalt) != "0123456789abcdef0123456789abcdef" ||
					p.SharedKeyDigest != pingVector || p.Username != "alice" || p.PasswordDigest != pwVector {
					t.Errorf("PING %+v", p)
				}
			default:
				t.Fatal("the fake server finished without a PING")
			}
		})
	}
}

// clientCertFiles writes the client certificate of writeCerts as PEM files.
func clientCertFiles(t *testing.T, dir string, cert []byte, key *ecdsa.PrivateKey) (certFile, keyFile string) {
	t.Helper()
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// The Client's traffic is accepted by the Server: plain, gzip, TLS with a
// CA, a client certificate and the server-name check, the shared-key
// handshake with users, and a unix socket.
func TestClientInterop(t *testing.T) {
	dir, _, clientCert := writeCerts(t)
	certFile, keyFile := clientCertFiles(t, dir, clientCert.Certificate[0], clientCert.PrivateKey.(*ecdsa.PrivateKey))
	serverTLS := &config.TLS{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
		CAFile: filepath.Join(dir, "ca.crt"), ClientAuth: "require"}
	clientTLS, err := ClientTLSConfig(&config.TLS{CAFile: filepath.Join(dir, "ca.crt"), CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	security := &config.Security{SelfHostname: "server.example", SharedKey: "secret", UserAuth: true,
		Users: []config.User{{Username: "alice", Password: "pw"}}}

	for _, tc := range []struct {
		name     string
		tls      bool
		security bool
		unix     bool
		compress config.ForwardCompress
		copts    ClientOptions
	}{
		{name: "plain"},
		{name: "gzip", compress: "gzip"},
		{name: "tls", tls: true, copts: ClientOptions{TLS: clientTLS}},
		{name: "handshake", security: true, copts: ClientOptions{Security: &ClientSecurity{SharedKey: "secret", Username: "alice", Password: "pw"}}},
		{name: "tls_handshake_gzip", tls: true, security: true, compress: "gzip",
			copts: ClientOptions{TLS: clientTLS, Security: &ClientSecurity{SharedKey: "secret", SelfHostname: "agent-1", Username: "alice", Password: "pw"}}},
		{name: "unix", unix: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := testSource()
			if tc.tls {
				src.TLS = serverTLS
			}
			if tc.security {
				src.Security = security
			}
			if tc.unix {
				src.Listen = "unix://" + filepath.Join(t.TempDir(), "f.sock")
			}
			coll := newCollector()
			ts := startServer(t, src, coll)
			o := tc.copts
			o.Address = ts.Addr().String()
			if tc.unix {
				o.Address = "unix://" + ts.Addr().String()
			}
			cl, err := Dial(context.Background(), o)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer cl.Close()
			enc, err := NewRequestEncoder(tc.compress)
			if err != nil {
				t.Fatal(err)
			}
			var p Packer
			var want []got
			for req := range 2 { // two requests on one connection
				p.Reset("interop." + tc.name)
				for i := range 3 {
					tm := event.FromUnix(T0+int64(req), int64(i*1000+7))
					r := rec("log", strings.Repeat("x", i*100), "n", itoa(req*10+i))
					p.Add(tm, r)
					want = append(want, got{Tag: p.Tag(), Time: tm, Record: r})
				}
				b, err := enc.Encode(&p, "chunk-"+itoa(req))
				if err != nil {
					t.Fatal(err)
				}
				if err := cl.SendAcked(context.Background(), b, "chunk-"+itoa(req)); err != nil {
					t.Fatalf("request %d: %v", req, err)
				}
			}
			checkEvents(t, coll.take(), want)
			if err := cl.Probe(context.Background()); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if ev := coll.take(); len(ev) != 0 {
				t.Fatalf("a probe ingested %d events", len(ev))
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		src := testSource()
		src.TLS = serverTLS
		src.Security = security
		ts := startServer(t, src, newCollector())
		addr := ts.Addr().String()
		wrongName := clientTLS.Clone()
		wrongName.ServerName = "elsewhere.example"
		noCert, _ := ClientTLSConfig(&config.TLS{CAFile: filepath.Join(dir, "ca.crt")})
		untrusted, _ := ClientTLSConfig(&config.TLS{}) // system roots
		for _, rc := range []struct {
			name   string
			o      ClientOptions
			op     string
			isAuth bool
		}{
			{"wrong_server_name", ClientOptions{TLS: wrongName, Security: &ClientSecurity{SharedKey: "secret", Username: "alice", Password: "pw"}}, OpTLS, false},
			{"untrusted_server", ClientOptions{TLS: untrusted, Security: &ClientSecurity{SharedKey: "secret", Username: "alice", Password: "pw"}}, OpTLS, false},
			{"no_client_cert", ClientOptions{TLS: noCert, Security: &ClientSecurity{SharedKey: "secret", Username: "alice", Password: "pw"}}, "", false},
			{"wrong_shared_key", ClientOptions{TLS: clientTLS, Security: &ClientSecurity{SharedKey: "guess", Username: "alice", Password: "pw"}}, OpHandshake, true},
			{"wrong_password", ClientOptions{TLS: clientTLS, Security: &ClientSecurity{SharedKey: "secret", Username: "alice", Password: "nope"}}, OpHandshake, true},
		} {
			t.Run(rc.name, func(t *testing.T) {
				o := rc.o
				o.Address, o.ConnectTimeout = addr, 5*time.Second
				cl, err := Dial(context.Background(), o)
				if err == nil {
					// TLS 1.3 reports a refused client certificate on the
					// first read, not in the handshake.
					err = cl.Probe(context.Background())
					cl.Close()
				}
				var oe *OpError
				if err == nil || !errors.As(err, &oe) || (rc.op != "" && oe.Op != rc.op) || errors.Is(err, ErrAuth) != rc.isAuth {
					t.Fatalf("got %v, want an OpError %q (auth %v)", err, rc.op, rc.isAuth)
				}
			})
		}
	})
}

// A client and a server that disagree about security fail clearly.
func TestClientSecurityMismatch(t *testing.T) {
	plain := startServer(t, testSource(), newCollector())
	_, err := Dial(context.Background(), ClientOptions{Address: plain.Addr().String(), ConnectTimeout: 300 * time.Millisecond,
		Security: &ClientSecurity{SharedKey: "k"}})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != OpHandshake || !strings.Contains(err.Error(), "no HELO") {
		t.Fatalf("security against a plain server: %v", err)
	}

	src := testSource()
	src.Security = &config.Security{SharedKey: "k"}
	secured := startServer(t, src, newCollector())
	cl, err := Dial(context.Background(), ClientOptions{Address: secured.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Probe(context.Background()); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "configure security") {
		t.Fatalf("no security against a secured server: %v", err)
	}
}

func TestClientAckTimeoutAndCancel(t *testing.T) {
	bc := &blockingConsumer{entered: make(chan *event.Batch, 4), release: make(chan struct{}), coll: newCollector()}
	ts := startServer(t, testSource(), bc)
	defer close(bc.release)
	var p Packer
	p.Reset("slow")
	p.Add(event.FromUnix(T0, 0), rec("a", "b"))
	enc, _ := NewRequestEncoder("text")
	req, _ := enc.Encode(&p, "c1")

	cl, err := Dial(context.Background(), ClientOptions{Address: ts.Addr().String(), AckTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = cl.SendAcked(context.Background(), req, "c1")
	if !errors.Is(err, ErrAckTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %s, want ErrAckTimeout after 200ms", err, time.Since(start))
	}
	if err := cl.Send(context.Background(), req); err == nil {
		t.Fatal("a failed client sent again")
	}
	cl.Close()

	cl, err = Dial(context.Background(), ClientOptions{Address: ts.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	if err := cl.SendAcked(ctx, req, "c1"); !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("cancelled: %v after %s", err, time.Since(start))
	}
}

func TestClientAckMismatch(t *testing.T) {
	ts := startServer(t, testSource(), newCollector())
	cl, err := Dial(context.Background(), ClientOptions{Address: ts.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var p Packer
	p.Reset("m")
	p.Add(event.FromUnix(T0, 0), rec("a", "b"))
	enc, _ := NewRequestEncoder("")
	req, _ := enc.Encode(&p, "sent-id")
	if err := cl.SendAcked(context.Background(), req, "other-id"); !errors.Is(err, ErrAckMismatch) {
		t.Fatalf("got %v, want ErrAckMismatch", err)
	}
}

func TestProbes(t *testing.T) {
	ts := startServer(t, testSource(), newCollector())
	addr := ts.Addr().String()
	ctx := context.Background()
	if err := ProbeTCP(ctx, addr, time.Second); err != nil {
		t.Fatalf("ProbeTCP: %v", err)
	}
	if err := ProbeUDP(ctx, addr, 2*time.Second); err != nil {
		t.Fatalf("ProbeUDP: %v", err)
	}
	ts.stop()
	<-ts.done
	ts.done <- nil
	if err := ProbeTCP(ctx, addr, time.Second); err == nil {
		t.Fatal("ProbeTCP passed against a stopped server")
	}
	if err := ProbeUDP(ctx, addr, 300*time.Millisecond); err == nil {
		t.Fatal("ProbeUDP passed against a stopped server")
	}
}

func TestRequestEncoding(t *testing.T) {
	var p Packer
	p.Reset("t")
	times := []event.Time{event.FromUnix(T0, 5), event.FromUnix(-10, 0), event.FromUnix(1<<33, 0)}
	for _, tm := range times {
		before := p.Size()
		p.Add(tm, rec("k", "v"))
		if d := p.Size() - before; d != EntrySize(tm, rec("k", "v")) {
			t.Errorf("EntrySize(%d) = %d, Add added %d", tm, EntrySize(tm, rec("k", "v")), d)
		}
	}
	if _, err := NewRequestEncoder("zstd"); err == nil {
		t.Error("NewRequestEncoder accepted zstd")
	}
	for _, compress := range []config.ForwardCompress{"text", "gzip"} {
		enc, _ := NewRequestEncoder(compress)
		b, err := enc.Encode(&p, "id")
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > p.Size()+len(p.Tag())+RequestOverhead && compress == "text" {
			t.Errorf("request of %d bytes exceeds the overhead bound", len(b))
		}
		coll := newCollector()
		s := streamServer(t, coll)
		res := runStream(s, coll, b)
		if len(res.events) != 3 || !bytes.Equal(res.out, AppendAck(nil, str("id"))) {
			t.Fatalf("%s: %d events, replies %x", compress, len(res.events), res.out)
		}
		if res.events[0].Time != times[0] {
			t.Errorf("%s: time %d, want %d", compress, res.events[0].Time, times[0])
		}
		// Times outside EventTime's range go as integer seconds.
		if sec, _ := res.events[2].Time.Unix(); sec != 1<<33 {
			t.Errorf("%s: time beyond 2106 read back as %d s", compress, sec)
		}
	}
}

// Packing and encoding allocate nothing per event once warm.
func TestPackerEncoderAllocs(t *testing.T) {
	r := dockerRecord(250)
	for _, compress := range []config.ForwardCompress{"text", "gzip"} {
		enc, _ := NewRequestEncoder(compress)
		var p Packer
		run := func() {
			p.Reset("docker.app")
			for i := range 1000 {
				p.Add(event.FromUnix(T0, int64(i)), r)
			}
			if _, err := enc.Encode(&p, "0123456789abcdefghijklmn"); err != nil {
				t.Fatal(err)
			}
		}
		run()
		if a := testing.AllocsPerRun(20, run); a > 0 {
			t.Errorf("%s: %.1f allocations per 1000-event request", compress, a)
		}
	}
}

func BenchmarkPackAndEncode(b *testing.B) {
	r := dockerRecord(250)
	for _, compress := range []config.ForwardCompress{"text", "gzip"} {
		b.Run(string(compress), func(b *testing.B) {
			enc, _ := NewRequestEncoder(compress)
			var p Packer
			const perRequest = 1000
			b.SetBytes(int64(len(r)) * perRequest)
			b.ReportAllocs()
			for b.Loop() {
				p.Reset("docker.app")
				for i := range perRequest {
					p.Add(event.FromUnix(T0, int64(i)), r)
				}
				if _, err := enc.Encode(&p, "0123456789abcdefghijklmn"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkClientLoopback sends 1000-event requests over loopback to a
// Server and waits for each ack: the round trip a forward output pays per
// request.
func BenchmarkClientLoopback(b *testing.B) {
	ts := startServer(b, testSource(), nopConsumer{})
	cl, err := Dial(context.Background(), ClientOptions{Address: ts.Addr().String()})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	r := dockerRecord(250)
	enc, _ := NewRequestEncoder("text")
	var p Packer
	const perRequest = 1000
	b.SetBytes(int64(len(r)) * perRequest)
	b.ReportAllocs()
	for b.Loop() {
		p.Reset("docker.app")
		for i := range perRequest {
			p.Add(event.FromUnix(T0, int64(i)), r)
		}
		req, _ := enc.Encode(&p, "0123456789abcdefghijklmn")
		if err := cl.SendAcked(context.Background(), req, "0123456789abcdefghijklmn"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "events/s")
}
