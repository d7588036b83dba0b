package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// marutaBin is the binary built once for the tests that run maruta as a
// separate process (kill -9 must hit a real process). Under -race it is
// built with the race detector, and a race it reports fails the test that
// ran it (checkRace).
var marutaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "maruta-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	marutaBin = filepath.Join(dir, "maruta")
	args := []string{"build", "-o", marutaBin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build maruta:", err)
		os.Exit(1)
	}
	code := m.Run()
	testutil.StopDocker()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a maruta process started by a test.
type proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	logs    *lockedBuffer
	stdout  *lockedBuffer
	done    chan struct{}
	exitErr error
	// scanned is closed when every line of the process's stderr is in
	// logs; raceSeen is set once a race report failed the test.
	scanned  chan struct{}
	raceSeen bool
	// Forward and HTTP are the bound addresses, read from the start log line.
	Forward string
	HTTP    string
}

// lockedBuffer keeps a process's output for the test to read.
type lockedBuffer = testutil.SyncBuffer

// startMaruta runs `maruta run` in dir with args (e.g. "-c", file) and env,
// with JSON logs, and waits until it logs that it started.
func startMaruta(t testing.TB, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startMarutaBin(t, marutaBin, dir, env, args...)
}

// startMarutaBin is startMaruta with another maruta binary.
func startMarutaBin(t testing.TB, bin, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, logs: &lockedBuffer{}, stdout: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"run", "-log-format", "json"}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	p.cmd.Stdout = p.stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan map[string]any, 1)
	p.scanned = make(chan struct{})
	go func() {
		defer close(p.scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "maruta started" {
				started <- m
			}
		}
	}()
	go func() {
		p.exitErr = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case m := <-started:
		if l, ok := m["listen"].([]any); ok && len(l) > 0 {
			p.Forward, _ = l[0].(string)
		}
		p.HTTP, _ = m["http"].(string)
	case <-p.done:
		t.Fatalf("maruta exited before starting: %v\n%s", p.exitErr, p.logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("maruta did not start in 20s:\n%s", p.logs)
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(timeout time.Duration) {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.checkRace()
		if p.exitErr != nil {
			p.t.Fatalf("maruta exited with %v:\n%s", p.exitErr, p.logs)
		}
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("maruta did not stop within %s:\n%s", timeout, p.logs)
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
	p.checkRace()
}

// checkRace fails the test if the (race-enabled) process reported a data
// race; it reports each process once.
func (p *proc) checkRace() {
	<-p.scanned
	logs := p.logs.String()
	i := strings.Index(logs, "WARNING: DATA RACE")
	if i < 0 || p.raceSeen {
		return
	}
	p.raceSeen = true
	p.t.Errorf("maruta reported a data race:\n%s", logs[i:min(len(logs), i+6000)])
}

// get fetches a path from maruta's HTTP server.
func (p *proc) get(path string) (int, string) {
	p.t.Helper()
	resp, err := http.Get("http://" + p.HTTP + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the sum of a metric's samples whose label set contains
// every given label (name="value" pairs), from /metrics.
func (p *proc) metric(name string, labels ...string) float64 {
	p.t.Helper()
	_, body := p.get("/metrics")
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		sum += v
	}
	return sum
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
