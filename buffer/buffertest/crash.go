package buffertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// KillLoop is the parent side of a crash test: it starts a child process
// (usually the test binary re-executed with an environment variable that
// makes TestMain run the child's work), lets it run for a random while,
// kills it with SIGKILL, and does that Kills times, each time on the same
// state (the child's folder). It collects every whole line the children
// wrote on stdout.
//
// A child signals that it has started by writing a line "ready"; most kills
// happen a random MinRun..MaxRun after that line, and one in four at a random
// moment in the first EarlyMax after the start (which can hit start-up and
// recovery). The child's stderr goes to the test log when it exits before it
// is killed.
type KillLoop struct {
	Kills          int
	MinRun, MaxRun time.Duration
	EarlyMax       time.Duration
	// Command returns the child for run i (0-based).
	Command func(i int) *exec.Cmd
	// Line is called with every stdout line of every child, in order per
	// child.
	Line func(run int, line string)
}

// Run runs the loop and returns how many children were really killed (a
// child that exited by itself is an error).
func (k *KillLoop) Run(t testing.TB) int {
	t.Helper()
	if k.MaxRun < k.MinRun {
		k.MaxRun = k.MinRun
	}
	killed := 0
	for i := 0; i < k.Kills; i++ {
		cmd := k.Command(i)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		ready := make(chan struct{})
		var once sync.Once
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if line == "ready" {
					once.Do(func() { close(ready) })
					continue
				}
				if k.Line != nil {
					k.Line(i, line)
				}
			}
			io.Copy(io.Discard, out)
		}()
		exited := make(chan error, 1)
		var delay time.Duration
		early := k.EarlyMax > 0 && rand.IntN(4) == 0
		if early {
			delay = time.Duration(rand.Int64N(int64(k.EarlyMax) + 1))
		} else {
			select {
			case <-ready:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
				cmd.Wait()
				t.Fatalf("child %d never got ready; stderr:\n%s", i, stderr.String())
			case <-done:
				cmd.Wait()
				t.Fatalf("child %d exited before it got ready; stderr:\n%s", i, stderr.String())
			}
			delay = k.MinRun + time.Duration(rand.Int64N(int64(k.MaxRun-k.MinRun)+1))
		}
		select {
		case <-time.After(delay):
		case <-done:
			exited <- cmd.Wait()
			t.Fatalf("child %d exited by itself (%v); stderr:\n%s", i, <-exited, stderr.String())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
			killed++
		}
		<-done
		cmd.Wait()
	}
	return killed
}

// Acks parses a child's line "ack <id> <id> ... ." into ids. Lines without
// the final " ." are not whole and yield nothing.
func Acks(line string) []string {
	rest, ok := strings.CutPrefix(line, "ack ")
	if !ok {
		return nil
	}
	rest, ok = strings.CutSuffix(rest, " .")
	if !ok {
		return nil
	}
	return strings.Fields(rest)
}

// FormatAck is the line a child prints after its ids were acknowledged.
func FormatAck(ids []string) string {
	return "ack " + strings.Join(ids, " ") + " .\n"
}

// ReadDelivered reads a RecordingSink's File: how often each event id was
// confirmed, and the distinct chunk ids per event id (more than one chunk
// for an id means the same event was appended twice; one chunk confirmed
// twice is a redelivery after a crash).
func ReadDelivered(file string) (count map[string]int, chunks map[string][]string, err error) {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, fmt.Errorf("read delivered ids: %w", err)
	}
	count, chunks = map[string]int{}, map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "." {
			continue
		}
		count[f[1]]++
		cs := chunks[f[1]]
		found := false
		for _, c := range cs {
			found = found || c == f[0]
		}
		if !found {
			chunks[f[1]] = append(cs, f[0])
		}
	}
	return count, chunks, nil
}
