package buffer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/buffer/buffertest"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// Crash test: the parent re-executes the test binary as a child that appends
// with many goroutines (fsync: always) and prints every id whose Consume
// returned nil; the parent kill -9s it at random moments, restarts it on
// the same folder, and at the end a child drains everything to a sink that
// records confirmed ids. Every acknowledged id must have been confirmed.

const (
	crashChildEnv = "MARUTA_BUFFER_CRASH_CHILD" // "append" or "drain"
	crashDirEnv   = "MARUTA_BUFFER_CRASH_DIR"
	crashRunEnv   = "MARUTA_BUFFER_CRASH_RUN"
)

func crashConfig(root string) config.Buffer {
	cfg := testConfig(filepath.Join(root, "buf"))
	cfg.ChunkLimitSize = 16 << 10
	cfg.FlushInterval = config.Duration(100 * time.Millisecond)
	cfg.RetryWait = config.Duration(20 * time.Millisecond)
	cfg.RetryMaxInterval = config.Duration(100 * time.Millisecond)
	cfg.RetryForever = true
	cfg.RetryTimeout = 0
	return cfg
}

// crashChild is the child's main; its result is the exit code.
func crashChild(mode string) int {
	root := os.Getenv(crashDirEnv)
	run := os.Getenv(crashRunEnv)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sink := &buffertest.RecordingSink{File: filepath.Join(root, "delivered.txt")}
	if mode == "append" {
		// Some deliveries fail, so chunks wait in the queue when the kill
		// comes, and retries are part of what is interrupted.
		sink.Fail = func(delivery.Chunk, int) error {
			if rand.IntN(5) == 0 {
				return errors.New("flaky sink")
			}
			return nil
		}
	}
	b, err := New(Options{Name: "crash", Config: crashConfig(root), Sink: sink, Node: "n", Logger: logger,
		DeadLetterDir: filepath.Join(root, "dead")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child New:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(ctx) }()
	st := b.Status()
	fmt.Printf("recovered cut=%d quarantined=%d queued=%d .\n", st.RecoveryCut, st.Quarantined, st.QueuedChunks)
	switch mode {
	case "append":
		os.Stdout.WriteString("ready\n")
		var mu sync.Mutex // one ack line per write(2), whole
		var wg sync.WaitGroup
		for g := 0; g < 32; g++ {
			wg.Go(func() {
				for i := 0; ; i++ {
					n := 1 + rand.IntN(8)
					bt := &event.Batch{Tag: "app." + strconv.Itoa(g%3)}
					ids := make([]string, n)
					for k := range ids {
						ids[k] = fmt.Sprintf("r%s-g%d-%d-%d", run, g, i, k)
						bt.Events = append(bt.Events, event.Event{Time: event.Now(),
							Record: buffertest.Record(ids[k], strings.Repeat("log line ", 1+rand.IntN(30)))})
					}
					if err := b.Consume(ctx, bt); err != nil {
						fmt.Fprintln(os.Stderr, "child Consume:", err)
						return
					}
					line := buffertest.FormatAck(ids)
					mu.Lock()
					os.Stdout.WriteString(line)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return 1 // the parent kills us before this
	case "drain":
		dctx, dcancel := context.WithTimeout(ctx, 60*time.Second)
		err := b.Drain(dctx)
		dcancel()
		st := b.Status()
		cancel()
		<-runDone
		if err != nil {
			fmt.Fprintln(os.Stderr, "child Drain:", err)
			return 1
		}
		fmt.Printf("drained cut=%d quarantined=%d dead=%d\n", st.RecoveryCut, st.Quarantined, st.DeadLettered)
		return 0
	}
	return 2
}

func TestCrashKill9(t *testing.T) {
	kills := 12
	if s := os.Getenv("MARUTA_CRASH_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	root := t.TempDir()
	child := func(mode string, run int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+mode, crashDirEnv+"="+root, crashRunEnv+"="+strconv.Itoa(run))
		return cmd
	}
	var mu sync.Mutex
	var cut, quarantined, recovered int64
	acked := map[string]bool{}
	perRun := make([]int, kills)
	loop := &buffertest.KillLoop{
		Kills:    kills,
		MinRun:   50 * time.Millisecond,
		MaxRun:   400 * time.Millisecond,
		EarlyMax: 30 * time.Millisecond,
		Command:  func(i int) *exec.Cmd { return child("append", i) },
		Line: func(run int, line string) {
			mu.Lock()
			var c, q, n int64
			if _, err := fmt.Sscanf(line, "recovered cut=%d quarantined=%d queued=%d .", &c, &q, &n); err == nil {
				cut += c
				quarantined += q
				recovered += n
			}
			for _, id := range buffertest.Acks(line) {
				acked[id] = true
				perRun[run]++
			}
			mu.Unlock()
		},
	}
	killed := loop.Run(t)

	cmd := child("drain", kills)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("drain child: %v\n%s", err, stderr)
	}
	count, chunks, err := buffertest.ReadDelivered(filepath.Join(root, "delivered.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for id := range acked {
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	dups, dupSameChunk, unacked := 0, 0, 0
	for id, n := range count {
		if !strings.HasPrefix(id, "r") {
			t.Errorf("delivered an id that was never sent: %q", id)
		}
		if n > 1 {
			dups++
			if len(chunks[id]) == 1 {
				dupSameChunk++
			}
		}
		if !acked[id] {
			unacked++
		}
	}
	t.Logf("crash test: %d kills, %d acked events (per run %v), %d distinct delivered, %d delivered more than once (%d by redelivery of the same chunk), %d delivered but never acked (in flight at a kill); restarts recovered %d queued chunks, cut %d torn bytes, quarantined %d files; drain child: %s",
		killed, len(acked), perRun, len(count), dups, dupSameChunk, unacked, recovered, cut, quarantined, strings.TrimSpace(string(out)))
	if killed < 10 && kills >= 10 {
		t.Errorf("only %d kills", killed)
	}
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged")
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged events were never delivered, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	if dups != dupSameChunk {
		t.Errorf("%d events delivered in two different chunks: an append was written twice", dups-dupSameChunk)
	}
	if left := files(t, filepath.Join(root, "buf")); len(left) != 0 {
		t.Errorf("buffer folder not empty after drain: %v", left)
	}
	if q := files(t, filepath.Join(root, "buf", "quarantine")); len(q) != 0 || quarantined != 0 {
		t.Errorf("quarantined files after kill -9 (never expected: headers are written before appends): %v", q)
	}
}
