package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// TestTopology runs the agent → aggregator hop as separate processes on
// loopback: 3 agents, each fed by two Docker-configured clients
// (fluent-logger-golang with RequestAck), forward to 2 aggregators (Forward
// in with dedup, JSON lines into one local lake). During the run:
//
//   - aggregator 1 is killed with SIGKILL and restarted;
//   - aggregator 2 is stopped with SIGSTOP for 30 s, then SIGCONT: it keeps
//     accepting TCP connections (the kernel does) but answers nothing, as a
//     hung host or a partition would; agents must notice by ack timeouts;
//   - agent 2 is killed with SIGKILL and restarted.
//
// At the end every event a client saw acked must be in the lake, and none
// twice: a client resends to the restarted agent what it had stored but not
// acked, an agent resends parts an aggregator stored but could not ack
// before it was killed or stopped, and the dedup index of every source
// (rebuilt from disk after a kill, on by default) acks those again without
// storing them (TestAgentKilledBeforeAck makes the kill land in that window
// on purpose). An aggregator killed between its fsync and its ack leaves
// the agent's part in doubt: the agent resends it to that aggregator only,
// once it is back (lost_ack_hold, 30s by default, far more than its
// restart here), never to the other one, whose index is another one
// (sinks' TestForwardLostAckHold makes that window certain).
//
// TOPO_DEBUG=1 logs the agents' forward log lines and where duplicates
// are.
func TestTopology(t *testing.T) {
	stopFor := 30 * time.Second
	if testing.Short() {
		stopFor = 8 * time.Second
	}
	dir := t.TempDir()
	lake := filepath.Join(dir, "lake")

	aggAddr := []string{freeTCPPort(t), freeTCPPort(t)}
	aggCfg := make([]string, 2)
	for i := range aggCfg {
		aggCfg[i] = writeFile(t, dir, fmt.Sprintf("agg%d.yaml", i+1), fmt.Sprintf(`
node: agg%[1]d
data_dir: %[2]s/agg%[1]d
http: {listen: "127.0.0.1:0"}
shutdown_timeout: 60s
sources:
  - type: forward
    listen: %[3]s
    dedup: {window: 10m, max_entries: 100000}
outputs:
  - type: file
    name: lake
    format: jsonl
    path: %[4]s/${tag}/
    buffer:
      flush_interval: 500ms
      chunk_limit_size: 1MiB
`, i+1, dir, aggAddr[i], lake))
	}
	agentAddr := []string{freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)}
	agentCfg := make([]string, 3)
	for i := range agentCfg {
		h1, p1 := splitHostPort(t, aggAddr[0])
		h2, p2 := splitHostPort(t, aggAddr[1])
		agentCfg[i] = writeFile(t, dir, fmt.Sprintf("agent%d.yaml", i+1), fmt.Sprintf(`
node: agent%[1]d
data_dir: %[2]s/agent%[1]d
http: {listen: "127.0.0.1:0"}
shutdown_timeout: 60s
sources:
  - type: forward
    listen: %[3]s
outputs:
  - type: forward
    name: up
    ack_response_timeout: 2s
    connect_timeout: 1s
    send_timeout: 2s
    heartbeat_interval: 250ms
    max_request_size: 64KiB
    servers:
      - {name: agg1, host: %[4]s, port: %[5]s}
      - {name: agg2, host: %[6]s, port: %[7]s}
    buffer:
      flush_interval: 250ms
      chunk_limit_size: 256KiB
      retry_wait: 200ms
      retry_max_interval: 1s
      retry_forever: true
`, i+1, dir, agentAddr[i], h1, p1, h2, p2))
	}

	aggs := make([]*proc, 2)
	for i := range aggs {
		aggs[i] = startMaruta(t, dir, nil, "-c", aggCfg[i])
	}
	agents := make([]*proc, 3)
	for i := range agents {
		agents[i] = startMaruta(t, dir, nil, "-c", agentCfg[i])
	}

	acks := &ackLog{acked: map[string]bool{}}
	var ackAtMu sync.Mutex
	ackAt := map[string]time.Duration{} // when each event was acked, since start
	start := time.Now()
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for a := range agents {
		for c := range 2 {
			f := dockerLogger(t, agentAddr[a], false)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer f.Close()
				tag := fmt.Sprintf("docker.agent%d-c%d", a+1, c)
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("a%d-c%d-%d", a+1, c, seq)
					rec := dockerRecord(fmt.Sprintf("app-%d", c), "stdout", `{"level":"info","msg":"request served","path":"/api/items"}`)
					rec["id"] = id
					sent.Add(1)
					if err := f.Post(tag, rec); err == nil {
						acks.add(id)
						ackAtMu.Lock()
						ackAt[id] = time.Since(start)
						ackAtMu.Unlock()
					}
				}
			}()
		}
	}
	ackedNow := func() int {
		acks.mu.Lock()
		defer acks.mu.Unlock()
		return len(acks.acked)
	}

	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	at(4 * time.Second)
	aggs[0].kill()
	t.Logf("%5.1fs kill -9 aggregator 1 (%d events acked so far)", time.Since(start).Seconds(), ackedNow())
	time.Sleep(1500 * time.Millisecond)
	aggs[0] = startMaruta(t, dir, nil, "-c", aggCfg[0])
	t.Logf("%5.1fs aggregator 1 restarted", time.Since(start).Seconds())

	at(8 * time.Second)
	aggs[1].cmd.Process.Signal(syscall.SIGSTOP)
	stoppedAt := time.Now()
	t.Logf("%5.1fs SIGSTOP aggregator 2 for %s", time.Since(start).Seconds(), stopFor)

	at(12 * time.Second)
	agents[1].kill()
	t.Logf("%5.1fs kill -9 agent 2", time.Since(start).Seconds())
	time.Sleep(time.Second)
	agents[1] = startMaruta(t, dir, nil, "-c", agentCfg[1])
	t.Logf("%5.1fs agent 2 restarted", time.Since(start).Seconds())

	time.Sleep(time.Until(stoppedAt.Add(stopFor)))
	aggs[1].cmd.Process.Signal(syscall.SIGCONT)
	t.Logf("%5.1fs SIGCONT aggregator 2", time.Since(start).Seconds())
	// Every agent takes aggregator 2 back once it answers probes again.
	for i, p := range agents {
		testutil.WaitUntil(t, 20*time.Second, fmt.Sprintf("agent %d to see aggregator 2 up", i+1), func() bool {
			return p.metric("maruta_forward_output_server_up", `server="agg2"`) == 1
		})
	}
	backAt := time.Since(start)
	before := 0.0
	for _, p := range agents {
		before += p.metric("maruta_forward_output_acks_total", `server="agg2"`)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%5.1fs clients stopped (aggregator 2 back at %.1fs)", time.Since(start).Seconds(), backAt.Seconds())

	// Metrics of the agents' current processes (agent 2's since its restart).
	var failovers, retries, agg2After float64
	for _, p := range agents {
		failovers += p.metric("maruta_forward_output_failovers_total")
		retries += p.metric("maruta_forward_output_retries_total")
		agg2After += p.metric("maruta_forward_output_acks_total", `server="agg2"`)
	}
	if os.Getenv("TOPO_DEBUG") != "" {
		for i, p := range agents {
			for _, l := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(l, "forward") || strings.Contains(l, "retry") || strings.Contains(l, "held") {
					t.Logf("agent%d: %s", i+1, l)
				}
			}
		}
	}
	for _, p := range agents {
		p.stop(90 * time.Second) // drains the agent's buffer to the aggregators
	}
	var suppressed float64
	for _, p := range aggs {
		suppressed += p.metric("maruta_forward_duplicate_events_total")
	}
	for _, p := range aggs {
		p.stop(90 * time.Second) // drains the aggregator's buffer to the lake
	}

	delivered := readLakeIDs(t, lake)
	missing, dups := 0, 0
	acks.mu.Lock()
	acked := len(acks.acked)
	for id := range acks.acked {
		if delivered[id] == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("acked event %s is not in the lake", id)
			}
		}
	}
	acks.mu.Unlock()
	dupIDs := []string{}
	bySecond := map[int]int{}    // duplicates by the second their event was acked
	byClient := map[string]int{} // and by client
	for id, n := range delivered {
		dups += n - 1
		if n > 1 {
			bySecond[int(ackAt[id]/time.Second)] += n - 1
			byClient[id[:strings.LastIndexByte(id, '-')]] += n - 1
			if len(dupIDs) < 10 {
				dupIDs = append(dupIDs, id)
			}
		}
	}
	t.Logf("sent=%d acked=%d delivered(unique)=%d duplicates=%d missing=%d failovers=%v agent_retries=%v dedup_suppressed=%v agg2_acks_after_recovery=%v runtime=%.1fs",
		sent.Load(), acked, len(delivered), dups, missing, failovers, retries, suppressed, agg2After-before, time.Since(start).Seconds())
	if dups > 0 && os.Getenv("TOPO_DEBUG") != "" {
		where := lakeFilesOf(t, lake, dupIDs)
		for _, id := range dupIDs {
			t.Logf("duplicate %s in %v", id, where[id])
		}
	}
	if dups > 0 {
		var secs []string
		for sec := range 120 {
			if n := bySecond[sec]; n > 0 {
				secs = append(secs, fmt.Sprintf("%ds:%d", sec, n))
			}
		}
		t.Logf("duplicates by second of their ack: %s; by client: %v; e.g. %s", strings.Join(secs, " "), byClient, strings.Join(dupIDs, " "))
	}
	if acked < 1000 {
		t.Errorf("only %d events acked: the test did not exercise much", acked)
	}
	if missing > 0 {
		t.Fatalf("%d acked events lost", missing)
	}
	if failovers == 0 {
		t.Error("no failover counted while aggregator 2 was stopped")
	}
	if agg2After <= before {
		t.Error("aggregator 2 acked nothing after it came back")
	}
	if dups > 0 {
		t.Errorf("%d duplicates for %d acked events", dups, acked)
	}
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// readLakeIDs counts the "id" of every JSON line under dir.
func readLakeIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".jsonl") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			ids[rec.ID]++
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// lakeFilesOf returns the lake files that hold each of ids.
func lakeFilesOf(t *testing.T, dir string, ids []string) map[string][]string {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string][]string{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			var rec struct {
				ID string `json:"id"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && want[rec.ID] {
				out[rec.ID] = append(out[rec.ID], filepath.Base(path))
			}
		}
		return nil
	})
	return out
}

// TestAgentKilledBeforeAck is the window TestTopology can only hit by
// chance, made certain: an agent forwards a chunk, the aggregator stores it
// and acks, but the ack never reaches the agent (a proxy swallows it); the
// agent is killed before it recorded the ack, and the aggregator is killed
// too. After both restart, the agent sends the chunk again with the same
// chunk ids: the aggregator acks it without storing it twice, from the
// marks in its buffer (the chunk was still there) or from its dedup record
// (the chunk had been delivered to the lake).
func TestAgentKilledBeforeAck(t *testing.T) {
	for _, v := range []struct {
		name  string
		flush string // the aggregator's flush_interval
	}{{"in_chunk", "1h"}, {"delivered", "100ms"}} {
		t.Run(v.name, func(t *testing.T) {
			dir := t.TempDir()
			lake := filepath.Join(dir, "lake")
			aggAddr, agentAddr := freeTCPPort(t), freeTCPPort(t)
			aggCfg := writeFile(t, dir, "agg.yaml", fmt.Sprintf(`
node: agg
data_dir: %[1]s/agg
http: {listen: "127.0.0.1:0"}
sources:
  - type: forward
    listen: %[2]s
outputs:
  - type: file
    name: lake
    format: jsonl
    path: %[3]s/${tag}/
    buffer: {flush_interval: %[4]s}
`, dir, aggAddr, lake, v.flush))
			agg := startMaruta(t, dir, nil, "-c", aggCfg)
			px := testutil.NewTCPProxy(t, aggAddr)
			host, port := splitHostPort(t, px.Addr())
			agentCfg := writeFile(t, dir, "agent.yaml", fmt.Sprintf(`
node: agent
data_dir: %[1]s/agent
http: {listen: "127.0.0.1:0"}
sources:
  - type: forward
    listen: %[2]s
outputs:
  - type: forward
    name: up
    ack_response_timeout: 60s
    servers: [{name: agg, host: %[3]s, port: %[4]s}]
    buffer: {flush_interval: 100ms}
`, dir, agentAddr, host, port))
			agent := startMaruta(t, dir, nil, "-c", agentCfg)

			// One acked request of 50 events into the agent; the
			// aggregator's ack of the forwarded chunk is swallowed.
			px.MuteReplies(true)
			const n = 50
			var acked []string
			stop := make(chan struct{})
			s := &ackedSender{addr: agentAddr, name: "e", events: n, pad: 20,
				tag:   func(int) string { return "window" },
				acked: func(ids []string, _ time.Time) { acked = ids; close(stop) }}
			s.run(stop) // returns after the first ack
			testutil.WaitUntil(t, 20*time.Second, "the aggregator to store and ack the chunk", func() bool {
				return agg.metric("maruta_forward_acks_total") >= 1
			})
			if v.flush != "1h" {
				testutil.WaitUntil(t, 20*time.Second, "the aggregator to deliver the chunk", func() bool {
					return agg.metric("maruta_buffer_delivered_events_total") >= n
				})
			}
			agent.kill()
			agg.kill()
			px.MuteReplies(false)
			agg = startMaruta(t, dir, nil, "-c", aggCfg)
			agent = startMaruta(t, dir, nil, "-c", agentCfg)
			testutil.WaitUntil(t, 30*time.Second, "the restarted agent to deliver its chunk", func() bool {
				return agent.metric("maruta_buffer_delivered_events_total") >= n
			})
			if d := agg.metric("maruta_forward_duplicate_events_total"); d != n {
				t.Errorf("the restarted aggregator counted %v duplicate events, want %d", d, n)
			}
			agent.stop(30 * time.Second)
			agg.stop(30 * time.Second)
			got := readLakeIDs(t, lake)
			bad := 0
			for _, id := range acked {
				if got[id] != 1 {
					if bad++; bad <= 3 {
						t.Errorf("event %s is in the lake %d times", id, got[id])
					}
				}
			}
			if bad > 0 || len(got) != n || len(acked) != n {
				t.Errorf("%d of %d acked events not in the lake once; %d distinct events in the lake", bad, len(acked), len(got))
			}
		})
	}
}
