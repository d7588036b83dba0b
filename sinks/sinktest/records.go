package sinktest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/marutalog/maruta/internal/event"
)

// Msgpack encodes v as msgpack with map keys sorted (deterministic).
func Msgpack(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := vm.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// DockerGen makes Docker-shaped records as the default pipeline leaves
// them: the fluentd log driver's fields plus a JSON access-log line parsed
// into fields. containers distinct containers; times advance by step.
type DockerGen struct {
	rnd        *rand.Rand
	base       event.Time
	step       time.Duration
	containers int
	ids        []string
	raw        bool // keep the log line as one string (not parsed)
}

// NewDockerGen returns a generator seeded with seed.
func NewDockerGen(seed uint64, containers int, base time.Time, raw bool) *DockerGen {
	g := &DockerGen{rnd: rand.New(rand.NewPCG(seed, 1)), base: event.Time(base.UnixNano()), step: time.Millisecond, containers: containers, raw: raw}
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

// Record returns the i-th record as a map.
func (g *DockerGen) Record(i int) map[string]any {
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

// Next returns the i-th event: tag docker.shop, a time step after the
// previous one, the record as msgpack.
func (g *DockerGen) Next(t testing.TB, i int) (string, event.Time, []byte) {
	return "docker.shop", g.base + event.Time(time.Duration(i)*g.step), Msgpack(t, g.Record(i))
}
