package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Rsyslog is a real rsyslogd (Debian's rsyslog and rsyslog-gnutls) run by
// the test: its own config, work folder and pid file under a temporary
// folder, in the foreground, on free 127.0.0.1 ports, no system socket,
// no privilege dropping. It receives syslog over TCP (imtcp; with TLS the
// gtls driver and a certificate from WriteTestCerts) and UDP (imudp), and
// writes every received message as one JSON line (the RFC 5424 header
// fields and the message, byte-exact: rsyslog's control-character escaping
// is off and maxMessageSize is 256k) to a file Messages reads. It is
// stopped when the test ends.
type Rsyslog struct {
	// TCP and UDP are the listening addresses (host:port).
	TCP, UDP string
	// CertDir holds ca.crt, server.crt, server.key when TLS is on.
	CertDir string

	dir string
	cmd *exec.Cmd
}

// SyslogMessage is what rsyslog parsed from one received message.
type SyslogMessage struct {
	Pri      string `json:"pri"`
	Host     string `json:"host"`
	App      string `json:"app"`
	ProcID   string `json:"procid"`
	MsgID    string `json:"msgid"`
	Time     string `json:"time"`
	Protocol string `json:"protocol"`
	Msg      string `json:"msg"`
	Input    string `json:"input"`
}

// RsyslogMaxMessage is the maxMessageSize the test rsyslog runs with.
const RsyslogMaxMessage = 256 << 10

const rsyslogConf = `global(workDirectory="%[1]s/work" maxMessageSize="256k"
  parser.escapeControlCharactersOnReceive="off"%[2]s)
module(load="imtcp"%[3]s)
input(type="imtcp" address="127.0.0.1" port="%[4]s")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="%[5]s")
template(name="exact" type="list") {
  constant(value="{")
  property(outname="pri" name="pri" format="jsonf") constant(value=",")
  property(outname="host" name="hostname" format="jsonf") constant(value=",")
  property(outname="app" name="app-name" format="jsonf") constant(value=",")
  property(outname="procid" name="procid" format="jsonf") constant(value=",")
  property(outname="msgid" name="msgid" format="jsonf") constant(value=",")
  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf") constant(value=",")
  property(outname="protocol" name="protocol-version" format="jsonf") constant(value=",")
  property(outname="input" name="inputname" format="jsonf") constant(value=",")
  property(outname="msg" name="msg" format="jsonf")
  constant(value="}\n")
}
if $inputname == "imtcp" or $inputname == "imudp" then {
  action(type="omfile" file="%[1]s/messages.jsonl" template="exact")
}
`

// StartRsyslog starts rsyslogd, with TLS on its TCP port when tls is true,
// or skips the test when rsyslogd is not installed (fails with
// MARUTA_REQUIRE_TOOLS=1).
func StartRsyslog(t testing.TB, tls bool) *Rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr == nil {
			bin, err = "/usr/sbin/rsyslogd", nil
		}
	}
	if err != nil {
		msg := "rsyslogd is not installed: apt-get install rsyslog rsyslog-gnutls (make tools does)"
		if os.Getenv("MARUTA_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := &Rsyslog{dir: t.TempDir()}
	if err := os.Mkdir(filepath.Join(r.dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	var global, module string
	if tls {
		if !hasGTLS() {
			t.Fatal("rsyslog's gtls driver is missing: apt-get install rsyslog-gnutls")
		}
		r.CertDir = WriteTestCerts(t)
		global = fmt.Sprintf(`
  defaultNetstreamDriverCAFile="%[1]s/ca.crt" defaultNetstreamDriverCertFile="%[1]s/server.crt"
  defaultNetstreamDriverKeyFile="%[1]s/server.key"`, r.CertDir)
		module = ` streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"`
	}
	for attempt := 0; ; attempt++ {
		r.TCP, r.UDP = freePorts(t)
		_, tport, _ := net.SplitHostPort(r.TCP)
		_, uport, _ := net.SplitHostPort(r.UDP)
		conf := filepath.Join(r.dir, "rsyslog.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, rsyslogConf, r.dir, global, module, tport, uport), 0o644); err != nil {
			t.Fatal(err)
		}
		r.cmd = exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
		var out bytes.Buffer
		r.cmd.Stdout, r.cmd.Stderr = &out, &out
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { r.cmd.Wait(); close(exited) }()
		if r.waitListening(exited) {
			t.Cleanup(func() {
				r.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					r.cmd.Process.Kill()
					<-exited
				}
			})
			return r
		}
		r.cmd.Process.Kill()
		<-exited
		if attempt == 4 {
			t.Fatalf("rsyslogd did not start listening:\n%s", out.String())
		}
	}
}

func hasGTLS() bool {
	m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	return len(m) > 0
}

// freePorts returns a free TCP and a free UDP address on 127.0.0.1.
func freePorts(t testing.TB) (string, string) {
	tcp, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	return tcp, u.LocalAddr().String()
}

// waitListening waits until the TCP port accepts connections, up to 15s.
func (r *Rsyslog) waitListening(exited chan struct{}) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", r.TCP, time.Second); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Messages returns what rsyslog has written so far.
func (r *Rsyslog) Messages(t testing.TB) []SyslogMessage {
	t.Helper()
	f, err := os.Open(filepath.Join(r.dir, "messages.jsonl"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []SyslogMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4*RsyslogMaxMessage)
	for sc.Scan() {
		var m SyslogMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			if strings.HasSuffix(sc.Text(), "}") {
				t.Fatalf("rsyslog output line is not JSON: %v: %.200s", err, sc.Text())
			}
			break // a line being written
		}
		out = append(out, m)
	}
	return out
}

// WaitMessages waits until rsyslog has written at least n messages (up to
// 20s) and returns them.
func (r *Rsyslog) WaitMessages(t testing.TB, n int) []SyslogMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.Messages(t)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d messages within 20s, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
