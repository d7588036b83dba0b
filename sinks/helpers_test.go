package sinks

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
)

// testEvent is one event of a test chunk.
type testEvent struct {
	tag string
	t   event.Time
	rec []byte
}

// memChunk is a sealed chunk held in memory.
type memChunk struct {
	info   delivery.ChunkInfo
	events []testEvent
}

func (c *memChunk) Info() delivery.ChunkInfo { return c.info }

func (c *memChunk) Scan(fn func(tag string, t event.Time, record []byte) error) error {
	buf := make([]byte, 0, 1024)
	for _, e := range c.events {
		// Hand out a scratch copy, as a disk reader would, so code that keeps
		// a record past the call sees it change.
		buf = append(buf[:0], e.rec...)
		if err := fn(e.tag, e.t, buf); err != nil {
			return err
		}
		clear(buf)
	}
	return nil
}

// fileChunk is a chunk streamed from a file of frames: tag length (u16),
// tag, time (i64), record length (u32), record. It is how a big chunk is
// read without holding it in memory.
type fileChunk struct {
	info delivery.ChunkInfo
	path string
}

func (c *fileChunk) Info() delivery.ChunkInfo { return c.info }

func (c *fileChunk) Scan(fn func(tag string, t event.Time, record []byte) error) error {
	f, err := os.Open(c.path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	var hdr [8]byte
	var tagBuf, rec []byte
	tag := ""
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint16(hdr[:2]))
		if cap(tagBuf) < n {
			tagBuf = make([]byte, n)
		}
		if _, err := io.ReadFull(r, tagBuf[:n]); err != nil {
			return err
		}
		if string(tagBuf[:n]) != tag {
			tag = string(tagBuf[:n])
		}
		if _, err := io.ReadFull(r, hdr[:8]); err != nil {
			return err
		}
		t := event.Time(binary.LittleEndian.Uint64(hdr[:8]))
		if _, err := io.ReadFull(r, hdr[:4]); err != nil {
			return err
		}
		m := int(binary.LittleEndian.Uint32(hdr[:4]))
		if cap(rec) < m {
			rec = make([]byte, m)
		}
		rec = rec[:m]
		if _, err := io.ReadFull(r, rec); err != nil {
			return err
		}
		if err := fn(tag, t, rec); err != nil {
			return err
		}
	}
}

// writeFileChunk writes events produced by gen while more(count, bytes)
// holds, and returns the chunk (Bytes and Events set).
func writeFileChunk(t testing.TB, dir string, info delivery.ChunkInfo, more func(n int, bytes int64) bool, gen func(i int) (string, event.Time, []byte)) *fileChunk {
	t.Helper()
	f, err := os.CreateTemp(dir, "chunk-*.bin")
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var total int64
	var hdr [8]byte
	n := 0
	for more(n, total) {
		tag, tm, rec := gen(n)
		binary.LittleEndian.PutUint16(hdr[:2], uint16(len(tag)))
		w.Write(hdr[:2])
		w.WriteString(tag)
		binary.LittleEndian.PutUint64(hdr[:8], uint64(tm))
		w.Write(hdr[:8])
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(rec)))
		w.Write(hdr[:4])
		w.Write(rec)
		total += int64(len(rec))
		n++
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info.Bytes, info.Events = total, int64(n)
	return &fileChunk{info: info, path: f.Name()}
}

// mp encodes v as msgpack with map keys sorted (deterministic).
func mp(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := vm.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dockerGen makes Docker-shaped records as the default pipeline leaves
// them: the fluentd log driver's fields plus a JSON access-log line parsed
// into fields. containers distinct containers; times advance by step.
type dockerGen struct {
	rnd        *rand.Rand
	base       event.Time
	step       time.Duration
	containers int
	ids        []string
	raw        bool // keep the log line as one string (not parsed)
}

func newDockerGen(seed uint64, containers int, base time.Time, raw bool) *dockerGen {
	g := &dockerGen{rnd: rand.New(rand.NewPCG(seed, 1)), base: event.Time(base.UnixNano()), step: time.Millisecond, containers: containers, raw: raw}
	for i := 0; i < containers; i++ {
		g.ids = append(g.ids, fmt.Sprintf("%016x%016x%016x%016x", g.rnd.Uint64(), g.rnd.Uint64(), g.rnd.Uint64(), g.rnd.Uint64()))
	}
	return g
}

var (
	paths   = []string{"/api/items", "/api/items/42", "/api/cart", "/api/checkout", "/healthz", "/api/users/me", "/static/app.js"}
	methods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	agents  = []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "curl/8.5.0", "kube-probe/1.29", "python-requests/2.31.0"}
)

func (g *dockerGen) record(i int) map[string]any {
	c := g.rnd.IntN(g.containers)
	status := 200
	switch x := g.rnd.IntN(100); {
	case x < 3:
		status = 500
	case x < 10:
		status = 404
	}
	level := "info"
	if status >= 500 {
		level = "error"
	}
	line := map[string]any{
		"level": level, "method": methods[g.rnd.IntN(len(methods))], "path": paths[g.rnd.IntN(len(paths))],
		"status": status, "latency_ms": float64(g.rnd.IntN(50000)) / 100, "bytes": g.rnd.IntN(100000),
		"request_id": fmt.Sprintf("%016x", g.rnd.Uint64()), "user_agent": agents[g.rnd.IntN(len(agents))],
		"remote_addr": fmt.Sprintf("10.%d.%d.%d", g.rnd.IntN(256), g.rnd.IntN(256), g.rnd.IntN(256)),
		"msg":         "request served",
	}
	rec := map[string]any{
		"container_id":   g.ids[c],
		"container_name": fmt.Sprintf("/shop-api-%d", c),
		"source":         "stdout",
	}
	if g.raw {
		b := new(strings.Builder)
		fmt.Fprintf(b, `{"level":%q,"method":%q,"path":%q,"status":%d,"latency_ms":%v,"bytes":%d,"request_id":%q,"user_agent":%q,"remote_addr":%q,"msg":"request served"}`,
			line["level"], line["method"], line["path"], line["status"], line["latency_ms"], line["bytes"], line["request_id"], line["user_agent"], line["remote_addr"])
		rec["log"] = b.String()
	} else {
		for k, v := range line {
			rec[k] = v
		}
	}
	return rec
}

func (g *dockerGen) next(t testing.TB, i int) (string, event.Time, []byte) {
	return "docker.shop", g.base + event.Time(time.Duration(i)*g.step), mp(t, g.record(i))
}
