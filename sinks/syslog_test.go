package sinks

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/sinktest"
)

func newSyslogSink(t *testing.T, outputs string) *Syslog {
	t.Helper()
	_, out := sinktest.Output(t, t.TempDir(), outputs)
	s, err := NewSyslog(Options{Output: out, Node: "node-1", Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func syslogChunk(t *testing.T, id string, ts time.Time, recs ...map[string]any) *sinktest.Chunk {
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: id, Output: "sl", Created: time.Now()}}
	for i, r := range recs {
		c.Events = append(c.Events, sinktest.Event{Tag: "docker.web", Time: event.FromUnix(0, ts.Add(time.Duration(i)*time.Microsecond).UnixNano()), Record: sinktest.Msgpack(t, r)})
	}
	c.ChunkInfo.Events = int64(len(recs))
	return c
}

// TestSyslogRsyslogTLS sends over TLS with octet counting to a real
// rsyslogd and reads every message back byte-exact: header fields from
// templates and record keys, unicode, a long line, a line with newlines
// inside, a record without `log` (sent as JSON), and a message above
// max_message_size split into several.
func TestSyslogRsyslogTLS(t *testing.T) {
	rs := tu.StartRsyslog(t, true)
	_, port, _ := net.SplitHostPort(rs.TCP)
	s := newSyslogSink(t, fmt.Sprintf(`  - type: syslog
    name: sl
    host: 127.0.0.1
    port: %s
    tls: {ca_file: %s/ca.crt}
    app_name: ${container_name}
    hostname: web-host
    procid: ${pid:-}
    msgid: ACCESS
    facility: local0
    severity_key: level
    max_message_size: 64KiB
`, port, rs.CertDir))
	ts := time.Date(2026, 11, 22, 13, 4, 5, 123456000, time.UTC)
	long := strings.Repeat("0123456789", 5000) // 50,000 bytes
	huge := strings.Repeat("ü", 70000)         // 140,000 bytes: split
	recs := []map[string]any{
		{"log": "plain ascii", "container_name": "/web-1", "level": "err", "pid": 42},
		{"log": "日本語のログ ✓ émoji 🚀", "container_name": "/web-1", "level": "warn"},
		{"log": long, "container_name": "/web-2"},
		{"log": "first line\nsecond line\r\nthird", "container_name": "/web-1", "level": 7},
		{"container_name": "/web-3", "other": map[string]any{"k": []any{1, "x"}}},
		{"log": huge, "container_name": "/web-1", "level": "no such level"},
	}
	if err := s.Write(context.Background(), syslogChunk(t, "t1", ts, recs...)); err != nil {
		t.Fatal(err)
	}
	got := rs.WaitMessages(t, 5+3)
	if len(got) != 8 {
		t.Fatalf("%d messages, want 8", len(got))
	}
	want := []tu.SyslogMessage{
		{Pri: "131", Host: "web-host", App: "/web-1", ProcID: "42", MsgID: "ACCESS", Time: "2026-11-22T13:04:05.123456Z", Msg: "plain ascii"},
		{Pri: "132", Host: "web-host", App: "/web-1", ProcID: "-", MsgID: "ACCESS", Time: "2026-11-22T13:04:05.123457Z", Msg: recs[1]["log"].(string)},
		{Pri: "134", Host: "web-host", App: "/web-2", ProcID: "-", MsgID: "ACCESS", Time: "2026-11-22T13:04:05.123458Z", Msg: long},
		{Pri: "135", Host: "web-host", App: "/web-1", ProcID: "-", MsgID: "ACCESS", Time: "2026-11-22T13:04:05.123459Z", Msg: "first line\nsecond line\r\nthird"},
		{Pri: "134", Host: "web-host", App: "/web-3", ProcID: "-", MsgID: "ACCESS", Time: "2026-11-22T13:04:05.123460Z", Msg: `{"container_name":"/web-3","other":{"k":[1,"x"]}}`},
	}
	for i, w := range want {
		g := got[i]
		g.Input, g.Protocol = "", ""
		if g != w {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, short(g), short(w))
		}
	}
	var joined strings.Builder
	for _, m := range got[5:] {
		if len(m.Msg) > 64<<10 || m.App != "/web-1" || m.Pri != "134" {
			t.Errorf("split piece: %d bytes, app %s, pri %s", len(m.Msg), m.App, m.Pri)
		}
		joined.WriteString(m.Msg)
	}
	if joined.String() != huge {
		t.Errorf("split pieces do not join back to the message (%d bytes, want %d)", joined.Len(), len(huge))
	}
	if n := testutil.ToFloat64(s.oversize.WithLabelValues("split")); n != 1 {
		t.Errorf("oversize split %v", n)
	}

	// The connection is kept: a second chunk goes over it; then rsyslog
	// sees both chunks' messages in order.
	if err := s.Write(context.Background(), syslogChunk(t, "t2", ts, map[string]any{"log": "again"})); err != nil {
		t.Fatal(err)
	}
	if got := rs.WaitMessages(t, 9); got[8].Msg != "again" {
		t.Errorf("second chunk: %+v", short(got[8]))
	}
}

func short(m tu.SyslogMessage) tu.SyslogMessage {
	if len(m.Msg) > 80 {
		m.Msg = fmt.Sprintf("%s…(%d bytes)", m.Msg[:80], len(m.Msg))
	}
	return m
}

// TestSyslogRsyslogPlain: plain TCP with newline framing (a newline in a
// message arrives as #012, one message) and UDP.
func TestSyslogRsyslogPlain(t *testing.T) {
	rs := tu.StartRsyslog(t, false)
	_, tport, _ := net.SplitHostPort(rs.TCP)
	_, uport, _ := net.SplitHostPort(rs.UDP)
	ts := time.Date(2026, 11, 22, 13, 4, 5, 0, time.UTC)
	nl := newSyslogSink(t, "  - {type: syslog, name: sl, host: 127.0.0.1, port: "+tport+", framing: newline, app_name: app}\n")
	if err := nl.Write(context.Background(), syslogChunk(t, "p1", ts, map[string]any{"log": "a\nb ✓"}, map[string]any{"log": "c"})); err != nil {
		t.Fatal(err)
	}
	got := rs.WaitMessages(t, 2)
	if got[0].Msg != "a#012b ✓" || got[1].Msg != "c" || got[0].App != "app" || got[0].Input != "imtcp" {
		t.Errorf("newline framing: %+v %+v", got[0], got[1])
	}
	udp := newSyslogSink(t, "  - {type: syslog, name: sl2, host: 127.0.0.1, port: "+uport+", protocol: udp, severity: notice}\n")
	if err := udp.Write(context.Background(), syslogChunk(t, "u1", ts, map[string]any{"log": "über udp"}, map[string]any{"log": "two"})); err != nil {
		t.Fatal(err)
	}
	got = rs.WaitMessages(t, 4)
	if got[2].Msg != "über udp" || got[3].Msg != "two" || got[2].Input != "imudp" || got[2].Pri != "13" || got[2].App != "docker.web" {
		t.Errorf("udp: %+v %+v", got[2], got[3])
	}
}

// TestSyslogTLSVerification: a server whose certificate another CA
// signed is refused with an error that names the CA problem; so is a
// name the certificate does not hold.
func TestSyslogTLSVerification(t *testing.T) {
	rs := tu.StartRsyslog(t, true)
	_, port, _ := net.SplitHostPort(rs.TCP)
	other := tu.WriteTestCerts(t)
	s := newSyslogSink(t, fmt.Sprintf("  - {type: syslog, name: sl, host: 127.0.0.1, port: %s, tls: {ca_file: %s/ca.crt}}\n", port, other))
	err := s.Write(context.Background(), syslogChunk(t, "v1", time.Now(), map[string]any{"log": "x"}))
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "not signed by a CA in ca_file "+other+"/ca.crt") {
		t.Errorf("wrong CA: got %v", err)
	}
	s2 := newSyslogSink(t, fmt.Sprintf("  - {type: syslog, name: sl2, host: 127.0.0.1, port: %s, tls: {ca_file: %s/ca.crt, server_name: logs.example.com}}\n", port, rs.CertDir))
	if err := s2.Write(context.Background(), syslogChunk(t, "v2", time.Now(), map[string]any{"log": "x"})); err == nil || !strings.Contains(err.Error(), `not valid for "logs.example.com"`) {
		t.Errorf("wrong name: got %v", err)
	}
	if msgs := rs.Messages(t); len(msgs) != 0 {
		t.Errorf("messages reached the server: %v", msgs)
	}
}

// TestSyslogReconnects: a server that closed an idle kept connection does
// not make the next chunk vanish into it; an unreachable server is a
// retryable error.
func TestSyslogReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Read one frame, then hang up as an idle-timeout server would.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			c.Close()
			frames <- string(buf[:n])
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s := newSyslogSink(t, "  - {type: syslog, name: sl, host: 127.0.0.1, port: "+port+", app_name: a, hostname: h}\n")
	ts := time.Date(2026, 11, 22, 13, 4, 5, 0, time.UTC)
	for i, word := range []string{"one", "two"} {
		msg := "<14>1 2026-11-22T13:04:05.000000Z h a - - - " + word
		if err := s.Write(context.Background(), syslogChunk(t, "r", ts, map[string]any{"log": word})); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-frames:
			if want := fmt.Sprintf("%d %s", len(msg), msg); got != want {
				t.Errorf("frame %d: %q, want %q", i, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d never arrived (written into a closed connection?)", i)
		}
	}
	ln.Close()
	err = s.Write(context.Background(), syslogChunk(t, "r2", ts, map[string]any{"log": "x"}))
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unreachable: got %v, want a retryable connection refused", err)
	}
}
