package sinks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/sinktest"
)

// Chunks spread over the active servers in proportion to their weights.
func TestForwardWeightedBalancing(t *testing.T) {
	light := startAggregator(t, "light", nil)
	heavy := startAggregator(t, "heavy", nil)
	f, _ := newFwdSink(t, fwdSinkYAML([]string{
		serverEntry("light", light, "weight: 20"), serverEntry("heavy", heavy, "weight: 60"),
	}, ""))
	const chunks = 400
	for i := range chunks {
		if err := f.Write(context.Background(), idChunk(fmt.Sprintf("c%04d", i), "app", 1, 10)); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	nl, nh := light.coll.total(), heavy.coll.total()
	t.Logf("weights 20:60 → light %d, heavy %d chunks", nl, nh)
	if nl+nh != chunks {
		t.Fatalf("delivered %d, want %d", nl+nh, chunks)
	}
	if share := float64(nh) / chunks; share < 0.68 || share > 0.82 {
		t.Errorf("heavy server got %.2f of the chunks, want about 0.75", share)
	}
	// The same chunk always goes to the same server.
	before := light.coll.total()
	for range 3 {
		f.Write(context.Background(), idChunk("c0000", "app", 1, 10))
	}
	if got := light.coll.total() - before; got != 0 && got != 3 {
		t.Errorf("a chunk id went to different servers: %d of 3 on light", got)
	}
	if v := counterOf(f.m.failovers.WithLabelValues("light")) + counterOf(f.m.failovers.WithLabelValues("heavy")); v != 0 {
		t.Errorf("failovers %v with every server up", v)
	}
}

// A server that goes away loses its chunks to the others; it gets them
// back once it is up again.
func TestForwardFailoverAndRecovery(t *testing.T) {
	a := startAggregator(t, "a", nil)
	b := startAggregator(t, "b", nil)
	f, logs := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, ""), serverEntry("b", b, "")}, ""))
	homeOf := func(id string) string { return home(f.servers, chunkHash(id)).name }
	var onA []string
	for i := 0; len(onA) < 10; i++ {
		if id := fmt.Sprintf("k%03d", i); homeOf(id) == "a" {
			onA = append(onA, id)
		}
	}
	a.stop()
	for _, id := range onA {
		if err := f.Write(context.Background(), idChunk(id, "app", 5, 10)); err != nil {
			t.Fatalf("write %s with a down: %v", id, err)
		}
	}
	if got := b.coll.total(); got != 50 {
		t.Fatalf("b got %d events, want 50", got)
	}
	if f.server("a").isUp() {
		t.Fatal("a still up")
	}
	if v := counterOf(f.m.failovers.WithLabelValues("a")); v != 10 {
		t.Errorf("failovers from a: %v, want 10", v)
	}
	if !strings.Contains(logs.String(), "forward server down") {
		t.Errorf("no log line for the server going down:\n%s", logs)
	}
	a.start()
	waitUp(t, f, "a", true)
	for _, id := range onA {
		if err := f.Write(context.Background(), idChunk(id+"x", "app", 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.coll.total(); got == 0 {
		t.Fatal("a got nothing after it came back")
	}
	if counterOf(f.m.up.WithLabelValues("a")) != 1 || !strings.Contains(logs.String(), "forward server up again") {
		t.Errorf("recovery not reported: up=%v\n%s", counterOf(f.m.up.WithLabelValues("a")), logs)
	}
}

// Standbys take chunks only while no active server is up.
func TestForwardStandby(t *testing.T) {
	a := startAggregator(t, "a", nil)
	b := startAggregator(t, "b", nil)
	sb := startAggregator(t, "sb", nil)
	f, _ := newFwdSink(t, fwdSinkYAML([]string{
		serverEntry("a", a, ""), serverEntry("b", b, ""), serverEntry("sb", sb, "standby: true, weight: 1000"),
	}, ""))
	write := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := f.Write(context.Background(), idChunk(fmt.Sprintf("%s%03d", prefix, i), "app", 1, 10)); err != nil {
				t.Fatalf("%s%d: %v", prefix, i, err)
			}
		}
	}
	write("all-up", 50)
	if sb.coll.total() != 0 || a.coll.total() == 0 || b.coll.total() == 0 {
		t.Fatalf("with actives up: a %d, b %d, standby %d", a.coll.total(), b.coll.total(), sb.coll.total())
	}
	a.stop()
	write("a-down", 20)
	if sb.coll.total() != 0 {
		t.Fatalf("standby used while b was up: %d", sb.coll.total())
	}
	b.stop()
	write("both-down", 20)
	if sb.coll.total() != 20 {
		t.Fatalf("standby got %d of 20 with every active down", sb.coll.total())
	}
	b.start()
	waitUp(t, f, "b", true)
	before := sb.coll.total()
	write("b-back", 20)
	if sb.coll.total() != before {
		t.Fatalf("standby still used after b came back")
	}
}

// A chunk larger than max_request_size, with several tags, goes as several
// acked requests: one tag per request, order kept within a tag, each event
// once.
func TestForwardSplit(t *testing.T) {
	a := startAggregator(t, "a", nil)
	f, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")}, "max_request_size: 2KiB\ncompress: gzip"))
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: "split", Created: time.Now()}}
	tags := []string{"web", "db", "web", "cache", "db", "web"}
	want := map[string][]string{}
	for i := range 600 {
		tag := tags[i%len(tags)]
		id := fmt.Sprintf("e%04d", i)
		c.Events = append(c.Events, sinktest.Event{Tag: tag, Time: event.FromUnix(1700000000, int64(i)), Record: idRecord(id, 40)})
		want[tag] = append(want[tag], id)
	}
	if err := f.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for tag, ids := range want {
		if got := a.coll.byTag[tag]; !slices.Equal(got, ids) {
			t.Fatalf("tag %s: %d events arrived, want %d in order", tag, len(got), len(ids))
		}
	}
	acks := counterOf(f.m.acks.WithLabelValues("a"))
	// The server counts an ack after writing it: wait for the last one.
	testutil.WaitUntil(t, 20*time.Second, "the server to count its last ack", func() bool { return a.metric("maruta_forward_acks_total") >= acks })
	if acks < 600*50/2048 || acks != float64(a.coll.batches) || acks != a.metric("maruta_forward_acks_total") {
		t.Errorf("acks %v, batches %d, server acks %v", acks, a.coll.batches, a.metric("maruta_forward_acks_total"))
	}
	t.Logf("600 events of 3 tags → %v acked requests", acks)
	// The split and the chunk ids are deterministic: sending the chunk
	// again is caught whole by the server's dedup.
	if err := f.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if a.coll.total() != 600 || a.metric("maruta_forward_duplicate_events_total") != 600 {
		t.Fatalf("after a resend: %d stored, %v duplicates", a.coll.total(), a.metric("maruta_forward_duplicate_events_total"))
	}
}

// An ack that gets lost makes the chunk fail; the resend carries the same
// chunk ids and the server's dedup stores the events once.
func TestForwardLostAckDedup(t *testing.T) {
	a := startAggregator(t, "a", nil)
	px := testutil.NewTCPProxy(t, a.addr)
	host, port, _ := net.SplitHostPort(px.Addr())
	f, _ := newFwdSink(t, fwdSinkYAML([]string{fmt.Sprintf("{name: a, host: %s, port: %s}", host, port)}, "heartbeat_type: tcp"))
	c := idChunk("lost-ack", "app", 20, 10)
	px.DropNextReply()
	err := f.Write(context.Background(), c)
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("write with a lost ack: %v, want a retryable error", err)
	}
	if a.coll.total() != 20 {
		t.Fatalf("the server stored %d events of the first send, want 20", a.coll.total())
	}
	waitUp(t, f, "a", true)
	if err := f.Write(context.Background(), c); err != nil {
		t.Fatalf("resend: %v", err)
	}
	for i := range 20 {
		if n := a.coll.get(fmt.Sprintf("lost-ack-%d", i)); n != 1 {
			t.Fatalf("event %d stored %d times", i, n)
		}
	}
	if d := a.metric("maruta_forward_duplicate_events_total"); d != 20 {
		t.Errorf("server counted %v duplicates, want 20", d)
	}
	if r := counterOf(f.m.retries.WithLabelValues("a")); r != 1 {
		t.Errorf("retries %v, want 1", r)
	}
	if k := counterOf(f.m.errors.WithLabelValues("a", fwdKindAck)); k != 1 {
		t.Errorf("ack errors %v, want 1", k)
	}
}

// Parts acked before a failure are not sent again when the chunk is
// retried, even without dedup on the server.
func TestForwardResumesAfterPartialFailure(t *testing.T) {
	a := startAggregator(t, "a", func(s *config.Source) { s.Dedup = nil })
	f, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")}, "max_request_size: 1KiB\nack_response_timeout: 300ms"))
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: "partial", Created: time.Now()}}
	for i := range 60 {
		tag := "first"
		if i >= 40 {
			tag = "second"
		}
		c.Events = append(c.Events, sinktest.Event{Tag: tag, Time: event.FromUnix(1700000000, 0), Record: idRecord(fmt.Sprintf("p%02d", i), 60)})
	}
	a.coll.setFail("second")
	if err := f.Write(context.Background(), c); err == nil {
		t.Fatal("write succeeded while the server refused a tag")
	}
	firstParts := counterOf(f.m.acks.WithLabelValues("a"))
	// Parts of "first" that went before the refused "second" part are
	// stored and acked; the rest of the chunk is not.
	if stored := a.coll.total(); stored < 20 || stored >= 60 || firstParts < 2 || float64(a.coll.batches) != firstParts {
		t.Fatalf("first attempt: %d events stored, %v parts acked", a.coll.total(), firstParts)
	}
	a.coll.setFail("")
	waitUp(t, f, "a", true)
	if err := f.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if n := a.coll.get(fmt.Sprintf("p%02d", i)); n != 1 {
			t.Fatalf("event p%02d stored %d times", i, n)
		}
	}
	if _, ok := f.progress.m["partial"]; ok {
		t.Error("progress kept after delivery")
	}
}

// Progress survives a restart of the agent: a new sink on the same
// data_dir skips the parts acked before, and keeps a held part for its
// server instead of failing over.
func TestForwardProgressSurvivesRestart(t *testing.T) {
	a := startAggregator(t, "a", func(s *config.Source) { s.Dedup = nil })
	b := startAggregator(t, "b", nil)
	px := testutil.NewTCPProxy(t, a.addr)
	host, port, _ := net.SplitHostPort(px.Addr())
	dataDir := t.TempDir()
	yaml := fwdSinkYAML([]string{fmt.Sprintf("{name: a, host: %s, port: %s, weight: 1000}", host, port), serverEntry("b", b, "weight: 1")},
		"max_request_size: 1KiB\nack_response_timeout: 300ms")
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: "restart1", Created: time.Now()}}
	for i := range 40 {
		c.Events = append(c.Events, sinktest.Event{Tag: "app", Time: event.FromUnix(1700000000, 0), Record: idRecord(fmt.Sprintf("r%02d", i), 60)})
	}
	f1, _ := newFwdSinkIn(t, dataDir, yaml)
	if home(f1.servers, chunkHash(c.ChunkInfo.ID)).name != "a" {
		t.Fatal("test chunk is not homed on a")
	}
	px.PauseAfterReplies(2) // parts 0 and 1 are acked, part 2 hangs
	if err := f1.Write(context.Background(), c); err == nil || !strings.Contains(err.Error(), "held") {
		t.Fatalf("write to a server that stops answering: %v", err)
	}
	f1.Close()
	files, _ := filepath.Glob(filepath.Join(dataDir, "forward", "fwd", "*.json"))
	if len(files) != 1 {
		t.Fatalf("progress files: %v", files)
	}

	f2, _ := newFwdSinkIn(t, dataDir, yaml) // the agent restarted
	if err := f2.Write(context.Background(), c); err == nil || !strings.Contains(err.Error(), "held") {
		t.Fatalf("restarted sink did not keep the hold: %v", err)
	}
	if b.coll.total() != 0 {
		t.Fatalf("the held part went to b")
	}
	px.Resume()
	waitUp(t, f2, "a", true)
	if err := f2.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// No dedup on a: parts 0, 1 and 3 once each proves that the restarted
	// sink skipped the parts acked before; part 2 was sent while a hung,
	// so a may hold it more than once.
	for i := range 40 {
		n := a.coll.get(fmt.Sprintf("r%02d", i))
		if n == 0 || (i < 20 || i >= 30) && n != 1 {
			t.Fatalf("event r%02d stored %d times", i, n)
		}
	}
	if b.coll.total() != 0 {
		t.Fatalf("b got %d events", b.coll.total())
	}
	if files, _ := filepath.Glob(filepath.Join(dataDir, "forward", "fwd", "*")); len(files) != 0 {
		t.Errorf("progress files left after delivery: %v", files)
	}
}

// With every server down Write fails fast with a retryable error.
func TestForwardAllDown(t *testing.T) {
	a := startAggregator(t, "a", nil)
	b := startAggregator(t, "b", nil)
	dataDir := t.TempDir()
	f, _ := newFwdSinkIn(t, dataDir, fwdSinkYAML([]string{serverEntry("a", a, ""), serverEntry("b", b, "")}, ""))
	a.stop()
	b.stop()
	start := time.Now()
	err := f.Write(context.Background(), idChunk("nowhere", "app", 3, 10))
	if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "no forward server") {
		t.Fatalf("got %v, want a retryable error naming the servers", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	waitUp(t, f, "a", false)
	waitUp(t, f, "b", false)
	err = f.Write(context.Background(), idChunk("nowhere", "app", 3, 10))
	if err == nil || !strings.Contains(err.Error(), "down for") || counterOf(f.m.unavailable) < 2 {
		t.Fatalf("second write: %v (unavailable %v)", err, counterOf(f.m.unavailable))
	}
	if files, _ := filepath.Glob(filepath.Join(dataDir, "forward", "fwd", "*")); len(files) != 0 {
		t.Errorf("progress files for a chunk that never got anywhere: %v", files)
	}
	if r := counterOf(f.m.requests.WithLabelValues("a")) + counterOf(f.m.retries.WithLabelValues("a")); r != 0 {
		t.Errorf("requests+retries to a down server: %v, want 0 (nothing was ever written)", r)
	}
	a.start()
	waitUp(t, f, "a", true)
	if err := f.Write(context.Background(), idChunk("nowhere", "app", 3, 10)); err != nil {
		t.Fatal(err)
	}
}

// TLS with a CA and server-name check, and the shared-key handshake with a
// user; a wrong key is retryable, counted as auth and logged as an error.
func TestForwardTLSAndSecurity(t *testing.T) {
	dir := testutil.WriteTestCerts(t)
	secure := func(s *config.Source) {
		s.TLS = &config.TLS{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")}
		s.Security = &config.Security{SharedKey: "s3cret", UserAuth: true, Users: []config.User{{Username: "agent", Password: "pw"}}}
	}
	a := startAggregator(t, "a", secure)
	tlsYAML := fmt.Sprintf("tls: {ca_file: %s, server_name: aggregator.test}", filepath.Join(dir, "ca.crt"))
	f, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")},
		tlsYAML+"\nsecurity: {shared_key: s3cret, username: agent, password: pw, self_hostname: agent-1}"))
	if err := f.Write(context.Background(), idChunk("secure", "app", 10, 10)); err != nil {
		t.Fatal(err)
	}
	if a.coll.total() != 10 {
		t.Fatalf("stored %d", a.coll.total())
	}

	bad, logs := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")},
		tlsYAML+"\nsecurity: {shared_key: wrong, username: agent, password: pw}\nheartbeat_interval: 1h")) // the Write meets the refusal, not a heartbeat
	err := bad.Write(context.Background(), idChunk("refused", "app", 10, 10))
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("wrong key: %v, want a retryable error", err)
	}
	if counterOf(bad.m.errors.WithLabelValues("a", fwdKindAuth)) != 1 || !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("auth failure not counted or logged as an error:\n%s", logs)
	}
	wrongName, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")},
		fmt.Sprintf("tls: {ca_file: %s, server_name: other.test}\nsecurity: {shared_key: s3cret, username: agent, password: pw}\nheartbeat_interval: 1h", filepath.Join(dir, "ca.crt"))))
	if err := wrongName.Write(context.Background(), idChunk("name", "app", 1, 10)); err == nil || counterOf(wrongName.m.errors.WithLabelValues("a", fwdKindTLS)) != 1 {
		t.Fatalf("wrong server name: %v", err)
	}
}

// A server that accepts connections but never answers (a stopped
// process) is caught by the UDP heartbeat, or by the ack timeout; a tcp
// heartbeat alone cannot bring it back.
func TestForwardHungServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// It accepts and never reads or writes (as the kernel does for a
	// stopped process), counting connections so the test can wait for
	// heartbeats and probes to have happened.
	var accepted atomic.Int64
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			accepted.Add(1)
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	hung := fmt.Sprintf("{name: hung, host: %s, port: %s}", host, port)
	good := startAggregator(t, "good", nil)

	t.Run("udp", func(t *testing.T) {
		f, _ := newFwdSink(t, fwdSinkYAML([]string{hung, serverEntry("good", good, "")}, "heartbeat_type: udp"))
		waitUp(t, f, "hung", false)
		if !f.server("good").isUp() {
			t.Fatal("udp heartbeat marked the live server down")
		}
	})
	t.Run("tcp_no_hold", func(t *testing.T) {
		f, _ := newFwdSink(t, fwdSinkYAML([]string{hung, serverEntry("good", good, "")}, "heartbeat_type: tcp\nack_response_timeout: 300ms\nack_timeout_hold: 0s"))
		var id string
		for i := 0; ; i++ {
			if id = fmt.Sprintf("h%d", i); home(f.servers, chunkHash(id)).name == "hung" {
				break
			}
		}
		n := accepted.Load()
		testutil.WaitUntil(t, 5*time.Second, "3 tcp heartbeats to the hung server", func() bool { return accepted.Load() >= n+3 })
		if !f.server("hung").isUp() {
			t.Fatal("a tcp heartbeat marked the accepting server down")
		}
		before := good.coll.total()
		if err := f.Write(context.Background(), idChunk(id, "app", 3, 10)); err != nil {
			t.Fatalf("write: %v", err)
		}
		if good.coll.total()-before != 3 || f.server("hung").isUp() {
			t.Fatalf("chunk not failed over after the ack timeout (good got %d)", good.coll.total()-before)
		}
		if counterOf(f.m.errors.WithLabelValues("hung", fwdKindAckTimeout)) != 1 {
			t.Error("ack timeout not counted")
		}
		// Two recovery probes connect: the first one ended unanswered.
		n = accepted.Load()
		testutil.WaitUntil(t, 10*time.Second, "2 probes of the hung server", func() bool { return accepted.Load() >= n+2 })
		if f.server("hung").isUp() {
			t.Fatal("the hung server came back without answering a probe")
		}
	})
}

// A request whose ack timed out is held for its server (ack_timeout_hold)
// instead of failing over: when the paused server resumes it stores the
// first copy, and the resend is caught by its dedup window. Chunks that
// never timed out fail over at once.
func TestForwardAckTimeoutHold(t *testing.T) {
	a := startAggregator(t, "a", nil)
	b := startAggregator(t, "b", nil)
	px := testutil.NewTCPProxy(t, a.addr)
	host, port, _ := net.SplitHostPort(px.Addr())
	f, _ := newFwdSink(t, fwdSinkYAML([]string{fmt.Sprintf("{name: a, host: %s, port: %s}", host, port), serverEntry("b", b, "")},
		"ack_response_timeout: 300ms\nlost_ack_hold: 500ms"))
	homed := func(prefix string) string {
		for i := 0; ; i++ {
			if id := fmt.Sprintf("%s%d", prefix, i); home(f.servers, chunkHash(id)).name == "a" {
				return id
			}
		}
	}
	c := idChunk(homed("held"), "app", 5, 10)
	px.Pause()
	err := f.Write(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "held for server a") {
		t.Fatalf("write to a paused server: %v", err)
	}
	if b.coll.total() != 0 {
		t.Fatalf("the timed-out part went to b (%d events)", b.coll.total())
	}
	start := time.Now()
	if err := f.Write(context.Background(), c); err == nil || !strings.Contains(err.Error(), "waits up to") || time.Since(start) > time.Second {
		t.Fatalf("retry while a is down: %v after %s", err, time.Since(start))
	}
	// A chunk that never timed out fails over to b at once.
	if err := f.Write(context.Background(), idChunk(homed("other"), "app", 3, 10)); err != nil || b.coll.total() != 3 {
		t.Fatalf("other chunk: %v, b got %d", err, b.coll.total())
	}
	px.Resume()
	// a stores the copy it was sent while paused.
	testutil.WaitUntil(t, 5*time.Second, "a to store the held copy", func() bool { return a.coll.total() >= 5 })
	waitUp(t, f, "a", true)
	if err := f.Write(context.Background(), c); err != nil {
		t.Fatalf("write after a resumed: %v", err)
	}
	for i := range 5 {
		if n := a.coll.get(fmt.Sprintf("%s-%d", c.ChunkInfo.ID, i)); n != 1 {
			t.Fatalf("event %d stored %d times on a", i, n)
		}
	}
	if d := a.metric("maruta_forward_duplicate_events_total"); d != 5 {
		t.Errorf("a suppressed %v duplicates, want 5", d)
	}
	if h := counterOf(f.m.held); h < 2 {
		t.Errorf("held_total %v", h)
	}

	// A held server that turns out to be gone (connections refused) is
	// waited for no longer than lost_ack_hold (a restart keeps its dedup
	// index), then the part fails over.
	c2 := idChunk(homed("gone"), "app", 4, 10)
	px.Pause()
	if err := f.Write(context.Background(), c2); err == nil || !strings.Contains(err.Error(), "held") {
		t.Fatalf("write to a paused server: %v", err)
	}
	heldAt := time.Now()
	px.Shutdown()
	testutil.WaitUntil(t, 5*time.Second, "a seen refusing connections", f.server("a").refusing)
	before := b.coll.total()
	if err := f.Write(context.Background(), c2); time.Since(heldAt) < 400*time.Millisecond && (err == nil || !strings.Contains(err.Error(), "waits up to")) {
		t.Fatalf("write while the held server is gone, within lost_ack_hold: %v", err)
	}
	time.Sleep(time.Until(heldAt.Add(500 * time.Millisecond)))
	if err := f.Write(context.Background(), c2); err != nil || b.coll.total()-before != 4 {
		t.Fatalf("write once lost_ack_hold passed: %v, b got %d", err, b.coll.total()-before)
	}
}

// A part written whole to a server whose connection then broke without an
// ack is in doubt: the server may have stored it just before it died. It
// is resent only to that server for lost_ack_hold, whose dedup index acks
// it without storing it again; a copy sent to another server would be
// stored there too. Chunks with nothing in doubt fail over at once.
func TestForwardLostAckHold(t *testing.T) {
	a := startAggregator(t, "a", nil)
	b := startAggregator(t, "b", nil)
	px := testutil.NewTCPProxy(t, a.addr)
	host, port, _ := net.SplitHostPort(px.Addr())
	f, logs := newFwdSink(t, fwdSinkYAML([]string{fmt.Sprintf("{name: a, host: %s, port: %s}", host, port), serverEntry("b", b, "")},
		"heartbeat_interval: 1h\nlost_ack_hold: 1m"))
	homed := func(prefix string) string {
		for i := 0; ; i++ {
			if id := fmt.Sprintf("%s%d", prefix, i); home(f.servers, chunkHash(id)).name == "a" {
				return id
			}
		}
	}
	c := idChunk(homed("doubt"), "app", 5, 10)
	px.DropNextReply() // a stores the part; its ack is lost with the connection
	err := f.Write(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "held for server a") {
		t.Fatalf("write whose ack was lost: %v", err)
	}
	if a.coll.total() != 5 || b.coll.total() != 0 {
		t.Fatalf("a stored %d, b %d events; want 5 and 0", a.coll.total(), b.coll.total())
	}
	if f.server("a").isUp() {
		t.Fatal("server a still up after its connection broke")
	}
	if !strings.Contains(logs.String(), "part in doubt: held for its server") {
		t.Errorf("no log line for the hold:\n%s", logs.String())
	}
	// While a is down the part waits (no heartbeat here brings a back).
	if err := f.Write(context.Background(), c); err == nil || !strings.Contains(err.Error(), "waits up to") {
		t.Fatalf("retry while a is down: %v", err)
	}
	if err := f.Write(context.Background(), idChunk(homed("other"), "app", 3, 10)); err != nil || b.coll.total() != 3 {
		t.Fatalf("a chunk with nothing in doubt: %v, b got %d", err, b.coll.total())
	}
	f.server("a").markUp() // "restarted": a probe would do this
	if err := f.Write(context.Background(), c); err != nil {
		t.Fatalf("write after a came back: %v", err)
	}
	for i := range 5 {
		if n := a.coll.get(fmt.Sprintf("%s-%d", c.ChunkInfo.ID, i)); n != 1 {
			t.Fatalf("event %d stored %d times on a", i, n)
		}
	}
	if b.coll.total() != 3 {
		t.Fatalf("b got %d events, want only the other chunk's 3", b.coll.total())
	}
	if d := a.metric("maruta_forward_duplicate_events_total"); d != 5 {
		t.Errorf("a suppressed %v duplicates, want 5", d)
	}

	// lost_ack_hold: 0 fails over at once (fluentd's way).
	f0, _ := newFwdSink(t, fwdSinkYAML([]string{fmt.Sprintf("{name: a, host: %s, port: %s}", host, port), serverEntry("b", b, "")},
		"heartbeat_interval: 1h\nlost_ack_hold: 0s"))
	c0 := idChunk(homed("nohold"), "app", 2, 10)
	before := b.coll.total()
	px.DropNextReply()
	if err := f0.Write(context.Background(), c0); err != nil || b.coll.total()-before != 2 {
		t.Fatalf("write without a hold: %v, b got %d", err, b.coll.total()-before)
	}
}

// Kept-alive connections are reused, replaced after keepalive_timeout,
// and one the server closed while idle is replaced before use, without
// marking the server down.
func TestForwardKeepalive(t *testing.T) {
	// A quick restart: a stopping server reads on until its connections
	// are quiet for shutdown_quiet, longer than keepalive_timeout here.
	a := startAggregator(t, "a", func(s *config.Source) { s.ShutdownQuiet = config.Duration(10 * time.Millisecond) })
	f, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")}, "heartbeat_interval: 1h\nkeepalive_timeout: 300ms"))
	for i := range 5 {
		if err := f.Write(context.Background(), idChunk(fmt.Sprintf("ka%d", i), "app", 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.metric("maruta_forward_connections_total"); n != 1 {
		t.Fatalf("%v connections for 5 chunks, want 1", n)
	}
	time.Sleep(400 * time.Millisecond)
	f.Write(context.Background(), idChunk("ka-late", "app", 1, 10))
	if n := a.metric("maruta_forward_connections_total"); n != 2 {
		t.Fatalf("%v connections after keepalive_timeout, want 2", n)
	}
	// The server restarts while the connection is idle.
	a.stop()
	a.start()
	if err := f.Write(context.Background(), idChunk("ka-after-restart", "app", 1, 10)); err != nil {
		t.Fatalf("write after a server restart: %v", err)
	}
	// The pool saw the server had closed the idle connection and dialed a
	// new one: nothing was written to the dead one, so nothing was in
	// doubt or resent.
	if !f.server("a").isUp() || counterOf(f.m.retries.WithLabelValues("a")) != 0 || counterOf(f.m.held) != 0 {
		t.Errorf("up %v, retries %v, held %v", f.server("a").isUp(), counterOf(f.m.retries.WithLabelValues("a")), counterOf(f.m.held))
	}
}

// The host name is resolved when connecting (here localhost).
func TestForwardHostName(t *testing.T) {
	a := startAggregator(t, "a", nil)
	_, port, _ := net.SplitHostPort(a.addr)
	f, _ := newFwdSink(t, fwdSinkYAML([]string{"{host: localhost, port: " + port + "}"}, "heartbeat_type: none\nrequire_ack_response: false"))
	if err := f.Write(context.Background(), idChunk("dns", "app", 2, 10)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 5*time.Second, "2 events stored", func() bool { return a.coll.total() >= 2 })
	if a.coll.total() != 2 {
		t.Fatalf("stored %d without acks", a.coll.total())
	}
	if f.servers[0].name != "localhost:"+port {
		t.Errorf("default server name %q", f.servers[0].name)
	}
}

// A corrupt chunk is the only permanent error.
func TestForwardPermanent(t *testing.T) {
	a := startAggregator(t, "a", nil)
	f, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")}, ""))
	err := f.Write(context.Background(), corruptChunk{})
	if !delivery.IsPermanent(err) {
		t.Fatalf("got %v, want permanent", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Write(ctx, idChunk("cancelled", "app", 1, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v", err)
	}
	if !f.server("a").isUp() {
		t.Fatal("a cancelled write marked the server down")
	}
}

type corruptChunk struct{}

func (corruptChunk) Info() delivery.ChunkInfo { return delivery.ChunkInfo{ID: "corrupt"} }
func (corruptChunk) Scan(func(string, event.Time, []byte) error) error {
	return delivery.Permanent(errors.New("bad crc"))
}

// Chunk ids of parts: deterministic, distinct per part, node and output.
func TestForwardPartIDs(t *testing.T) {
	a := startAggregator(t, "a", nil)
	f, _ := newFwdSink(t, fwdSinkYAML([]string{serverEntry("a", a, "")}, ""))
	id0, id1 := f.partID("abc", 0), f.partID("abc", 1)
	if id0 == id1 || id0 != f.partID("abc", 0) || len(id0) != 24 {
		t.Fatalf("ids %q %q", id0, id1)
	}
	other := &Forward{node: "agent-2", name: f.name, maxRequest: f.maxRequest}
	if other.partID("abc", 0) == id0 {
		t.Fatal("two nodes share a chunk id")
	}
	other = &Forward{node: f.node, name: "other", maxRequest: f.maxRequest}
	if other.partID("abc", 0) == id0 {
		t.Fatal("two outputs share a chunk id")
	}
}

// BenchmarkForwardSink delivers 2000-event chunks of Docker-shaped records
// (about 250 bytes) to a loopback aggregator, acked, one request per chunk.
func BenchmarkForwardSink(b *testing.B) {
	a := startAggregator(b, "a", func(s *config.Source) { s.Dedup = nil })
	a.coll.mu.Lock()
	a.coll.discard = true
	a.coll.mu.Unlock()
	f, _ := newFwdSink(b, fwdSinkYAML([]string{serverEntry("a", a, "")}, "heartbeat_type: none"))
	c := idChunk("bench", "docker.app", 2000, 230)
	b.SetBytes(c.ChunkInfo.Bytes)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.ChunkInfo.ID = fmt.Sprintf("bench%d", i)
		i++
		if err := f.Write(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*2000)/b.Elapsed().Seconds(), "events/s")
}
