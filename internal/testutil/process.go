package testutil

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Healthy is a process started by StartHealthy.
type Healthy struct {
	cmd  *exec.Cmd
	done chan error
	logs *SyncBuffer
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output)
// and concurrent readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartHealthy starts cmd (a maruta run), with its stderr kept, and waits
// until http://addr/healthz answers 200. It fails the test if the process
// exits first or nothing answers within 20 s. The process is stopped when
// the test ends, if Stop has not stopped it.
func StartHealthy(t testing.TB, cmd *exec.Cmd, addr string) *Healthy {
	t.Helper()
	h := &Healthy{cmd: cmd, done: make(chan error, 1), logs: &SyncBuffer{}}
	cmd.Stderr = h.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() { h.Stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("%v exited (%v) before serving http://%s/healthz:\n%s", cmd.Args, err, addr, h.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: no http://%s/healthz in 20s:\n%s", cmd.Args, addr, h.logs)
		}
	}
}

// Stop interrupts the process and waits for it (killing it after 20 s);
// it reports whether it stopped on the interrupt. Safe to call twice.
func (h *Healthy) Stop() bool {
	if h.cmd.ProcessState != nil {
		return true
	}
	h.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-h.done:
		h.done <- err
		return true
	case <-time.After(20 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
		return false
	}
}
