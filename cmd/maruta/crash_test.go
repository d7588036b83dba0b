package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/msgpack"
)

// ackLog records which events senders saw acknowledged.
type ackLog struct {
	mu    sync.Mutex
	acked map[string]bool
}

func (a *ackLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func (a *ackLog) add(ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.acked[id] = true
	}
}

// freeTCPPort returns a loopback address whose port was free a moment ago
// for TCP and UDP (maruta's heartbeat binds both); the crash test needs a
// fixed port so clients find the restarted process. The port is below
// Linux's ephemeral range (32768–60999), so no outgoing connection takes it
// as its source port before maruta binds it (with Docker's reconnecting
// drivers and other packages' tests beside, a port from :0 sometimes was).
func freeTCPPort(t testing.TB) string {
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

// packedForward builds a PackedForward request with a chunk option.
func packedForward(tag, chunk string, records [][]byte) []byte {
	var entries []byte
	now := time.Now()
	for _, r := range records {
		entries = msgpack.AppendArrayHeader(entries, 2)
		entries = msgpack.AppendEventTime(entries, now.Unix(), int64(now.Nanosecond()))
		entries = append(entries, r...)
	}
	b := msgpack.AppendArrayHeader(nil, 3)
	b = msgpack.AppendString(b, tag)
	b = msgpack.AppendBin(b, entries)
	b = msgpack.AppendMapHeader(b, 2)
	b = msgpack.AppendString(b, "size")
	b = msgpack.AppendInt(b, int64(len(records)))
	b = msgpack.AppendString(b, "chunk")
	return msgpack.AppendString(b, chunk)
}

// rawSender sends PackedForward requests of n events with a chunk id and
// waits for each ack, reconnecting whenever the server goes away and then
// sending the unacked request again (same chunk id).
func rawSender(addr, name string, n int, stop <-chan struct{}, acks *ackLog, sent *atomic.Int64) {
	s := &ackedSender{addr: addr, name: name, events: n, pad: 200, sent: sent, resend: true,
		tag:   func(int) string { return "crash.raw" },
		acked: func(ids []string, _ time.Time) { acks.add(ids...) }}
	s.run(stop)
}

// ackedSender sends PackedForward requests with a chunk id and waits for
// each ack, reconnecting whenever the server goes away. Without resend a
// request without an ack is abandoned: its events were never promised.
// With resend it is sent again, byte for byte (same chunk id), on the next
// connection until it is acked, as fluentd and Docker's driver do: a
// server that stored it before it went away must ack it again without
// storing it twice.
type ackedSender struct {
	addr   string
	name   string // event ids are <name>-<seq>
	events int    // per request
	pad    int    // bytes of each record's "log"
	resend bool
	// tag is the tag of the requests sent on the conn-th connection
	// (from 1).
	tag   func(conn int) string
	acked func(ids []string, at time.Time)
	sent  *atomic.Int64 // events sent (resends not counted); may be nil
}

func (s *ackedSender) run(stop <-chan struct{}) {
	var conn net.Conn
	seq, conns := 0, 0
	tag := ""
	var req []byte // the request waiting for its ack
	var ids []string
	var chunk string
	for {
		select {
		case <-stop:
			if conn != nil {
				conn.Close()
			}
			return
		default:
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", s.addr, time.Second)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			conn = c
			conns++
			tag = s.tag(conns)
		}
		if req == nil {
			ids = make([]string, s.events)
			recs := make([][]byte, s.events)
			for i := range recs {
				ids[i] = fmt.Sprintf("%s-%d", s.name, seq)
				seq++
				r := msgpack.AppendMapHeader(nil, 2)
				r = msgpack.AppendString(r, "id")
				r = msgpack.AppendString(r, ids[i])
				r = msgpack.AppendString(r, "log")
				recs[i] = msgpack.AppendString(r, strings.Repeat("z", s.pad))
			}
			var cid [16]byte
			binary.BigEndian.PutUint64(cid[:], rand.Uint64())
			binary.BigEndian.PutUint64(cid[8:], uint64(seq))
			chunk = base64.StdEncoding.EncodeToString(cid[:])
			req = packedForward(tag, chunk, recs)
			if s.sent != nil {
				s.sent.Add(int64(s.events))
			}
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := conn.Write(req)
		if err == nil && readAck(conn, chunk) {
			s.acked(ids, time.Now())
			req = nil
			continue
		}
		conn.Close()
		conn = nil
		if !s.resend {
			req = nil
		}
	}
}

// readAck reads one ack response and reports whether it acks chunk.
func readAck(conn net.Conn, chunk string) bool {
	buf := make([]byte, 0, 64)
	tmp := make([]byte, 64)
	for {
		k, err := conn.Read(tmp)
		buf = append(buf, tmp[:k]...)
		if v, _, ferr := msgpack.MapGet(buf, "ack", 4); ferr == nil {
			s, _, _ := msgpack.ReadStr(v)
			return string(s) == chunk
		}
		if err != nil {
			return false
		}
	}
}

// TestCrashKill9 is the durability contract end to end: Docker-configured
// clients (RequestAck) and 8 raw PackedForward senders (100 events per
// request) with chunk ids write to maruta while it is killed with SIGKILL
// at random moments, at least ten times, and restarted on the same data
// folder. Every client sends a request that was not acked again with the
// same chunk id. In the end every event a client saw acknowledged must be
// in the output, and no event twice: a resend of a request stored before a
// kill is recognised by the dedup index the restart rebuilt (on by
// default).
func TestCrashKill9(t *testing.T) {
	kills := 10
	if testing.Short() {
		kills = 3
	}
	dir := t.TempDir()
	addr := freeTCPPort(t)
	cfg := writeFile(t, dir, "crash.yaml", fmt.Sprintf(`
node: crash
data_dir: %[1]s/data
http: {listen: off}
shutdown_timeout: 60s
sources:
  - type: forward
    listen: %[2]s
outputs:
  - type: file
    name: out
    format: jsonl
    path: %[1]s/out/${tag}/
    buffer:
      flush_interval: 300ms
      chunk_limit_size: 256KiB
      fsync: always
`, dir, addr))

	acks := &ackLog{acked: map[string]bool{}}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rawSender(addr, fmt.Sprintf("raw%d", i), 100, stop, acks, &sent)
		}()
	}
	p := startMaruta(t, dir, nil, "-c", cfg)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := dockerLogger(t, addr, false)
			defer f.Close()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("docker%d-%d", i, seq)
				rec := dockerRecord("app", "stdout", `{"msg":"hello"}`)
				rec["id"] = id
				sent.Add(1)
				if err := f.Post("crash.docker", rec); err == nil {
					acks.add(id)
				}
			}
		}()
	}

	temps := 0
	for k := range kills {
		time.Sleep(time.Duration(200+rand.IntN(1200)) * time.Millisecond)
		p.kill()
		t.Logf("kill -9 #%d after %d acked events", k+1, acks.count())
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		litter := lakeTemps(t, filepath.Join(dir, "out"))
		temps += len(litter)
		p = startMaruta(t, dir, nil, "-c", cfg)
		for _, f := range litter {
			if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("temporary file %s left by kill #%d is still there after the restart (%v)", f, k+1, err)
			}
		}
	}
	t.Logf("%d temporary lake files left by the kills, removed at restart", temps)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	p.stop(90 * time.Second) // drain: every queued chunk is delivered

	delivered := map[string]int{}
	err := filepath.WalkDir(filepath.Join(dir, "out"), func(path string, d fs.DirEntry, err error) error {
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
			delivered[rec.ID]++
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	missing, dups := 0, 0
	for id := range acks.acked {
		if delivered[id] == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("acked event %s was not delivered", id)
			}
		}
	}
	for _, n := range delivered {
		dups += n - 1
	}
	t.Logf("kills=%d sent=%d acked=%d delivered(unique)=%d duplicates=%d missing=%d",
		kills, sent.Load(), len(acks.acked), len(delivered), dups, missing)
	if len(acks.acked) < 1000 {
		t.Errorf("only %d events acked: the test did not exercise much", len(acks.acked))
	}
	if missing > 0 {
		t.Errorf("%d acked events lost", missing)
	}
	if dups > 0 {
		t.Errorf("%d events stored twice", dups)
	}
}
