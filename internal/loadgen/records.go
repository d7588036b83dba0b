package loadgen

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/marutalog/maruta/internal/msgpack"
)

// Container is one emulated Docker container.
type Container struct {
	ID   string // 64 hex digits, as Docker's container_id
	Name string // "/name", as Docker's container_name
}

// NewContainer returns container i of a run seeded with seed: the same
// arguments give the same id.
func NewContainer(seed uint64, i int) Container {
	r := rand.New(rand.NewPCG(seed, uint64(i)+1))
	var id [32]byte
	for k := 0; k < len(id); k += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			id[k+j] = byte(v >> (8 * j))
		}
	}
	return Container{ID: hex.EncodeToString(id[:]), Name: fmt.Sprintf("/bench-app-%d", i)}
}

// ShortID is the first 12 hex digits of the id: Docker's default tag.
func (c Container) ShortID() string { return c.ID[:12] }

// Record is one Docker-shaped log record, in both forms a sender needs.
type Record struct {
	// Msgpack is the record as one msgpack map (for PackedForward senders).
	Msgpack []byte
	// Fields is the same record as Docker's fluentd driver builds it
	// (container_id, container_name, source, log).
	Fields map[string]string
}

var (
	levels  = [...]string{"info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "warn", "warn", "error"}
	methods = [...]string{"GET", "GET", "GET", "GET", "POST", "PUT", "DELETE"}
	routes  = [...]string{"/api/v1/items/", "/api/v1/users/", "/api/v1/orders/", "/static/app.js?v=", "/healthz?probe="}
	words   = [...]string{"request", "handled", "user", "session", "cache", "miss", "hit", "retry", "upstream",
		"timeout", "connection", "closed", "order", "created", "payment", "accepted", "queue", "worker", "started",
		"finished", "in", "ms", "for", "the", "from", "to", "id", "token", "refreshed", "query", "rows"}
	agents = [...]string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"curl/8.5.0",
		"kube-probe/1.30",
		"Go-http-client/1.1",
	}
)

// LogLine returns a JSON access-log line of about size bytes (never less
// than its fixed fields need, about 150): time, level, method, path,
// status, latency, bytes, request id and, to reach the size, a user agent
// and padding. r drives the variation.
func LogLine(r *rand.Rand, size int) string {
	b := make([]byte, 0, size+16)
	b = append(b, `{"ts":"2026-11-22T13:05:`...)
	b = appendPad2(b, r.IntN(60))
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(100+r.IntN(900)), 10)
	b = append(b, `Z","level":"`...)
	lvl := levels[r.IntN(len(levels))]
	b = append(b, lvl...)
	b = append(b, `","method":"`...)
	b = append(b, methods[r.IntN(len(methods))]...)
	b = append(b, `","path":"`...)
	b = append(b, routes[r.IntN(len(routes))]...)
	b = strconv.AppendInt(b, int64(r.IntN(100000)), 10)
	status := 200
	switch lvl {
	case "warn":
		status = 404
	case "error":
		status = 500 + r.IntN(4)
	}
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, float64(r.IntN(50000))/100, 'f', -1, 64)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(r.IntN(200000)), 10)
	b = append(b, `,"request_id":"`...)
	b = appendHex(b, r.Uint64())
	b = append(b, '"')
	if ua := agents[r.IntN(len(agents))]; len(b)+len(ua)+9 <= size {
		b = append(b, `,"ua":"`...)
		b = append(b, ua...)
		b = append(b, '"')
	}
	if pad := size - len(b) - len(`,"msg":""}`); pad > 0 {
		b = append(b, `,"msg":"`...)
		// Words, as log messages are made of (random letters would not
		// compress as real logs do).
		for n := 0; n < pad; {
			w := words[r.IntN(len(words))]
			if n > 0 {
				w = " " + w
			}
			w = w[:min(len(w), pad-n)]
			b = append(b, w...)
			n += len(w)
		}
		b = append(b, '"')
	}
	for len(b) < size-1 { // too little room for a field: JSON whitespace
		b = append(b, ' ')
	}
	b = append(b, '}')
	return string(b)
}

func appendPad2(b []byte, v int) []byte {
	if v < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(v), 10)
}

func appendHex(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, digits[(v>>uint(i))&0xf])
	}
	return b
}

// DefaultLogSize is the size of the JSON log line that makes a record of
// about 330 bytes of msgpack with the default container names.
const DefaultLogSize = 200

// NewRecord builds a record of container c with a JSON log line of about
// logSize bytes; r drives the variation (source, line content).
func NewRecord(r *rand.Rand, c Container, logSize int) Record {
	source := "stdout"
	if r.IntN(10) == 0 {
		source = "stderr"
	}
	line := LogLine(r, logSize)
	b := msgpack.AppendMapHeader(nil, 4)
	b = msgpack.AppendString(b, "container_id")
	b = msgpack.AppendString(b, c.ID)
	b = msgpack.AppendString(b, "container_name")
	b = msgpack.AppendString(b, c.Name)
	b = msgpack.AppendString(b, "source")
	b = msgpack.AppendString(b, source)
	b = msgpack.AppendString(b, "log")
	b = msgpack.AppendString(b, line)
	return Record{
		Msgpack: b,
		Fields: map[string]string{
			"container_id":   c.ID,
			"container_name": c.Name,
			"source":         source,
			"log":            line,
		},
	}
}

// Pool is a fixed set of distinct records that senders cycle through, so
// that generating records costs the load generator nothing during a run.
type Pool struct {
	Records []Record
	bytes   int
}

// NewPool builds n records spread over the given containers (record i
// belongs to containers[i%len]).
func NewPool(seed uint64, n int, containers []Container, logSize int) *Pool {
	r := rand.New(rand.NewPCG(seed, 0x6c6f6767))
	p := &Pool{Records: make([]Record, n)}
	for i := range p.Records {
		p.Records[i] = NewRecord(r, containers[i%len(containers)], logSize)
		p.bytes += len(p.Records[i].Msgpack)
	}
	return p
}

// MeanSize is the mean msgpack size of the pool's records.
func (p *Pool) MeanSize() float64 { return float64(p.bytes) / float64(len(p.Records)) }

// seqRecordBytes is the mean msgpack size of the records of a container
// logging the lines of `seq 1 lines` (lines 0: 1000).
func seqRecordBytes(c Container, lines int) float64 {
	if lines <= 0 {
		lines = 1000
	}
	digits := 0
	for i := 1; i <= lines; i++ {
		digits += len(strconv.Itoa(i))
	}
	b := msgpack.AppendMapHeader(nil, 4)
	for _, kv := range [][2]string{{"container_id", c.ID}, {"container_name", c.Name}, {"source", "stdout"}, {"log", ""}} {
		b = msgpack.AppendString(b, kv[0])
		b = msgpack.AppendString(b, kv[1])
	}
	return float64(len(b)) + float64(digits)/float64(lines)
}
