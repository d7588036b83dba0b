package forward

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
)

// dockerConfig is the fluent.Config Docker's fluentd log driver
// (daemon/logger/fluentd) builds from its log options with their defaults:
// fluentd-buffer-limit 1MiB, fluentd-retry-wait 1s, fluentd-max-retries
// MaxInt32, and the fluentd-async, fluentd-request-ack and
// fluentd-sub-second-precision switches (the deprecated AsyncConnect, which
// the driver sets false, is left at its zero value).
func dockerConfig(addr net.Addr, async, requestAck, subSecond bool) fluent.Config {
	cfg := fluent.Config{
		FluentNetwork:      "tcp",
		BufferLimit:        1024 * 1024,
		RetryWait:          1000,
		MaxRetry:           math.MaxInt32,
		Async:              async,
		SubSecondPrecision: subSecond,
		RequestAck:         requestAck,
		ForceStopAsyncSend: async,
	}
	switch a := addr.(type) {
	case *net.TCPAddr:
		cfg.FluentHost, cfg.FluentPort = a.IP.String(), a.Port
	case *net.UnixAddr:
		cfg.FluentNetwork, cfg.FluentSocketPath = "unix", a.Name
	}
	return cfg
}

// dockerLine is one message as Docker's driver builds it in Log().
type dockerLine struct {
	ts   time.Time
	data map[string]string
}

func dockerLines(containerID string) []dockerLine {
	base := func(source, line string) map[string]string {
		return map[string]string{
			"container_id":   containerID,
			"container_name": "/web-1",
			"source":         source,
			"log":            line,
			// extra attributes from --log-opt labels=/env=
			"com.example.team": "payments",
			"DEPLOY_ENV":       "prod",
		}
	}
	partial := func(line, id string, ord int, last bool) map[string]string {
		m := base("stdout", line)
		m["partial_message"] = "true"
		m["partial_id"] = id
		m["partial_ordinal"] = strconv.Itoa(ord)
		m["partial_last"] = strconv.FormatBool(last)
		return m
	}
	t0 := time.Date(2026, 11, 22, 13, 4, 5, 123456789, time.UTC)
	pid := strings.Repeat("9a", 32)
	return []dockerLine{
		{t0, base("stdout", `{"level":"info","msg":"hello"}`)},
		{t0.Add(time.Millisecond), base("stderr", "")},
		{t0.Add(2 * time.Millisecond), base("stdout", "caf\xc3\xa9 \xff\xfe not utf-8 \xc3")},
		{t0.Add(3 * time.Millisecond), base("stdout", strings.Repeat("0123456789abcdef", 1024))}, // 16 KiB
		{t0.Add(4 * time.Millisecond), partial(strings.Repeat("p", 16<<10), pid, 1, false)},
		{t0.Add(5 * time.Millisecond), partial("tail of the line", pid, 2, true)},
	}
}

// recordStrings decodes a record whose keys and values are all str.
func recordStrings(t *testing.T, rec []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := msgpack.MapEach(rec, 8, func(k, v []byte) error {
		ks, _, err := msgpack.ReadStr(k)
		if err != nil {
			return err
		}
		vs, _, err := msgpack.ReadStr(v)
		if err != nil {
			return fmt.Errorf("value of %s: %w", ks, err)
		}
		m[string(ks)] = string(vs)
		return nil
	})
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return m
}

func TestDockerDriver(t *testing.T) {
	containerID := strings.Repeat("0123456789abcdef", 4)
	tag := "docker." + containerID[:12]
	for _, tc := range []struct {
		name                         string
		async, requestAck, subSecond bool
		unix                         bool
	}{
		{name: "sync"},
		{name: "async", async: true},
		{name: "request_ack", requestAck: true},
		{name: "sub_second_precision", subSecond: true},
		{name: "async_request_ack_sub_second", async: true, requestAck: true, subSecond: true},
		{name: "unix_socket_request_ack", requestAck: true, unix: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := testSource()
			if tc.unix {
				src.Listen = "unix://" + filepath.Join(t.TempDir(), "fluentd.sock")
			}
			coll := newCollector()
			ts := startServer(t, src, coll)
			logger, err := fluent.New(dockerConfig(ts.Addr(), tc.async, tc.requestAck, tc.subSecond))
			if err != nil {
				t.Fatal(err)
			}
			lines := dockerLines(containerID)
			for _, l := range lines {
				if err := logger.PostWithTime(tag, l.ts, l.data); err != nil {
					t.Fatalf("post: %v", err)
				}
			}
			coll.waitCount(t, len(lines), 10*time.Second)
			if err := logger.Close(); err != nil {
				t.Fatal(err)
			}
			ev := coll.take()
			if len(ev) != len(lines) {
				t.Fatalf("got %d events, want %d", len(ev), len(lines))
			}
			for i, l := range lines {
				if ev[i].Tag != tag {
					t.Errorf("event %d: tag %q", i, ev[i].Tag)
				}
				want := event.FromUnix(l.ts.Unix(), 0)
				if tc.subSecond {
					want = event.FromUnix(l.ts.Unix(), int64(l.ts.Nanosecond()))
				}
				if ev[i].Time != want {
					t.Errorf("event %d: time %v, want %v", i, ev[i].Time.Std(), want.Std())
				}
				got := recordStrings(t, ev[i].Record)
				if len(got) != len(l.data) {
					t.Errorf("event %d: %d fields, want %d", i, len(got), len(l.data))
				}
				for k, v := range l.data {
					if got[k] != v {
						t.Errorf("event %d: %s = %.40q, want %.40q", i, k, got[k], v)
					}
				}
			}
			wantAcks := 0.0
			if tc.requestAck {
				wantAcks = float64(len(lines))
			}
			// The server counts an ack after writing it, so the client may
			// hold the last ack a moment before the counter moves.
			testutil.WaitUntil(t, 5*time.Second, fmt.Sprintf("%v acks counted", wantAcks), func() bool { return metricValue(ts.m.acks) >= wantAcks })
			if v := metricValue(ts.m.acks); v != wantAcks {
				t.Errorf("acks %v, want %v", v, wantAcks)
			}
			mode := ModeMessage
			if v := metricValue(ts.m.requests[mode]); v != float64(len(lines)) {
				t.Errorf("message requests %v", v)
			}
			for _, r := range allReasons {
				if v := ts.errCount(r); v != 0 {
					t.Errorf("errors_total{reason=%q} = %v", r, v)
				}
			}
		})
	}
}

// TestDockerOldMessage is Docker ≤ 18.09 (fluent-logger-golang before
// options were sent): a 4-element Message whose option is nil.
func TestDockerOldMessage(t *testing.T) {
	coll := newCollector()
	ts := startServer(t, testSource(), coll)
	c := dial(t, ts.Addr())
	record := rec("container_id", strings.Repeat("ab", 32), "container_name", "/old", "source", "stdout", "log", "from 18.09")
	c.send(cat(arr(str("docker.old"), num(T0), record, nilv()), probe), 0)
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str("probe")) {
		t.Fatalf("ack: %x %v", a, err)
	}
	ev := coll.take("probe")
	if len(ev) != 1 || ev[0].Tag != "docker.old" || !bytes.Equal(ev[0].Record, record) || ev[0].Time != at(T0, 0) {
		t.Fatalf("events: %+v", ev)
	}
}

// TestFluentdPackedForward is what fluentd's out_forward sends: a
// PackedForward chunk with EventTime entries, a chunk id of 16 random bytes
// in Ruby's Base64.encode64 (24 characters and a "\n"), and compressed: text.
func TestFluentdPackedForward(t *testing.T) {
	coll := newCollector()
	ts := startServer(t, testSource(), coll)
	id := make([]byte, 16)
	rand.Read(id)
	chunkID := base64.StdEncoding.EncodeToString(id) + "\n"
	if len(chunkID) != 25 {
		t.Fatalf("chunk id %q", chunkID)
	}
	var payload []byte
	var want []got
	for i := range 100 {
		r := rec("message", fmt.Sprint("line ", i), "host", "web-1")
		payload = append(payload, entry(et(T0, int64(i)), r)...)
		want = append(want, got{"fluentd.app", at(T0, int64(i)), r})
	}
	req := arr(str("fluentd.app"), bin(payload), obj(str("size"), num(100), str("chunk"), str(chunkID), str("compressed"), str("text")))
	c := dial(t, ts.Addr())
	c.send(req, 0)
	a, err := c.readAck(5 * time.Second)
	if err != nil || !bytes.Equal(a, str(chunkID)) {
		t.Fatalf("ack %x %v, want %q", a, err, chunkID)
	}
	checkEvents(t, coll.take(), want)
	// Resent with gzip (fluentd's compress gzip), same chunk id.
	req = arr(str("fluentd.app"), bin(gz(payload)), obj(str("size"), num(100), str("chunk"), str(chunkID), str("compressed"), str("gzip")))
	c.send(req, 0)
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str(chunkID)) {
		t.Fatalf("gzip ack %x %v", a, err)
	}
	checkEvents(t, coll.take(), want)
}

// TestFluentBitPackedForward is what Fluent Bit's out_forward sends with
// the v1.5 event format: [[EventTime, {metadata}], record] entries.
func TestFluentBitPackedForward(t *testing.T) {
	coll := newCollector()
	ts := startServer(t, testSource(), coll)
	var payload []byte
	var want []got
	for i := range 10 {
		r := rec("log", fmt.Sprint("fb ", i), "stream", "stdout")
		meta := obj()
		if i%2 == 1 {
			meta = obj(str("otlp"), obj(str("severity"), str("INFO")))
		}
		payload = append(payload, entry(arr(et(T0, int64(i)), meta), r)...)
		want = append(want, got{"kube.var.log", at(T0, int64(i)), r})
	}
	chunk := make([]byte, 16)
	rand.Read(chunk)
	chunkID := hex.EncodeToString(chunk)
	c := dial(t, ts.Addr())
	c.send(arr(str("kube.var.log"), bin(payload), obj(str("size"), num(10), str("chunk"), str(chunkID), str("fluent_signal"), num(0))), 0)
	if a, err := c.readAck(5 * time.Second); err != nil || !bytes.Equal(a, str(chunkID)) {
		t.Fatalf("ack %x %v", a, err)
	}
	checkEvents(t, coll.take(), want)
}

func checkEvents(t *testing.T, ev, want []got) {
	t.Helper()
	if len(ev) != len(want) {
		t.Fatalf("got %d events, want %d", len(ev), len(want))
	}
	for i := range want {
		if ev[i].Tag != want[i].Tag || ev[i].Time != want[i].Time || !bytes.Equal(ev[i].Record, want[i].Record) {
			t.Fatalf("event %d: got %+v, want %+v", i, ev[i], want[i])
		}
	}
}

// TestDockerManyContainers runs several Docker clients at once, one per
// container, as on a busy node.
func TestDockerManyContainers(t *testing.T) {
	coll := newCollector()
	ts := startServer(t, testSource(), coll)
	const containers, lines = 8, 200
	errs := make(chan error, containers)
	for c := range containers {
		go func() {
			logger, err := fluent.New(dockerConfig(ts.Addr(), false, true, true))
			if err != nil {
				errs <- err
				return
			}
			defer logger.Close()
			id := strings.Repeat(fmt.Sprintf("%02x", c+1), 32)
			for i := range lines {
				err := logger.PostWithTime("docker."+id[:12], time.Unix(T0, int64(i)), map[string]string{
					"container_id": id, "container_name": fmt.Sprint("/c", c), "source": "stdout", "log": fmt.Sprint(i)})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range containers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ev := coll.take()
	if len(ev) != containers*lines {
		t.Fatalf("got %d events", len(ev))
	}
	// Per container, in order.
	next := map[string]int{}
	for _, e := range ev {
		m := recordStrings(t, e.Record)
		if m["log"] != strconv.Itoa(next[e.Tag]) || e.Time != at(T0, int64(next[e.Tag])) {
			t.Fatalf("%s: got line %s at %v, want %d", e.Tag, m["log"], e.Time, next[e.Tag])
		}
		next[e.Tag]++
	}
}
