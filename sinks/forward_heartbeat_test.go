package sinks

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/testutil"
)

// TestForwardHeartbeatCompletesTheTransport: the default heartbeat
// (transport) to a server with TLS and a shared key is a whole session —
// TLS handshake, HELO/PING/PONG — so the server sees no connection it
// would log as a handshake error (Fluent Bit logs a bare connect to a
// server with a shared key as one, TLS servers an unexpected EOF). Every
// connection the server accepted completed its handshake; a bare connect
// (the old tcp heartbeat) does not, which the server tells apart.
func TestForwardHeartbeatCompletesTheTransport(t *testing.T) {
	dir := testutil.WriteTestCerts(t)
	a := startAggregator(t, "a", func(s *config.Source) {
		s.TLS = &config.TLS{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")}
		s.Security = &config.Security{SharedKey: "s3cret"}
	})
	cfg := fmt.Sprintf("tls: {ca_file: %s, server_name: aggregator.test}\nsecurity: {shared_key: s3cret, self_hostname: agent-1}\nheartbeat_interval: 20ms",
		filepath.Join(dir, "ca.crt"))
	f, sinkLogs := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")}, cfg))
	if f.cfg.HeartbeatType != "transport" {
		t.Fatalf("default heartbeat_type %q, want transport", f.cfg.HeartbeatType)
	}
	handshakes := func() int { return strings.Count(a.logs.String(), `msg="handshake done"`) }
	testutil.WaitUntil(t, 20*time.Second, "10 heartbeat handshakes", func() bool { return handshakes() >= 10 })
	f.Close() // no heartbeat in flight after this
	// The server logs a handshake after it has answered it: the client may
	// have closed the last heartbeat connection before that line is written.
	conns := func() int { return int(a.metric("maruta_forward_connections_total")) }
	testutil.WaitUntil(t, 10*time.Second, "every accepted connection to complete its handshake",
		func() bool { return conns() == handshakes() })
	for _, lvl := range []string{"level=WARN", "level=ERROR"} {
		if strings.Contains(a.logs.String(), lvl) {
			t.Errorf("the server logged at %s:\n%s", lvl, a.logs)
		}
	}
	if v := a.metric("maruta_forward_errors_total"); v != 0 {
		t.Errorf("maruta_forward_errors_total = %v, want 0", v)
	}
	if strings.Contains(sinkLogs.String(), "forward server down") {
		t.Errorf("a heartbeat marked the server down:\n%s", sinkLogs)
	}

	// The control: a bare connect and close is a connection without a
	// handshake, which the counts above would have shown.
	before := int(a.metric("maruta_forward_connections_total"))
	if err := forward.ProbeTCP(context.Background(), a.addr, time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 20*time.Second, "the probe's connection", func() bool { return int(a.metric("maruta_forward_connections_total")) == before+1 })
	if int(a.metric("maruta_forward_connections_total")) == handshakes() {
		t.Errorf("a bare connect counted as a completed handshake: the check above proves nothing")
	}
}
