package forward

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// dockerRecord builds a record shaped like Docker's fluentd log driver's,
// size bytes long (size >= 130).
func dockerRecord(size int) []byte {
	head := func(logLen int) []byte {
		b := msgpack.AppendMapHeader(nil, 4)
		b = msgpack.AppendString(b, "container_id")
		b = msgpack.AppendString(b, strings.Repeat("3f", 32))
		b = msgpack.AppendString(b, "container_name")
		b = msgpack.AppendString(b, "/my-app-web-1")
		b = msgpack.AppendString(b, "source")
		b = msgpack.AppendString(b, "stdout")
		b = msgpack.AppendString(b, "log")
		return msgpack.AppendString(b, strings.Repeat("x", logLen))
	}
	n := size - len(head(0))
	for len(head(n)) > size {
		n--
	}
	return head(n)
}

// packedRequest is a PackedForward request of n Docker-shaped records of
// recSize bytes with EventTime times.
func packedRequest(n, recSize int) []byte {
	r := dockerRecord(recSize)
	var payload []byte
	for i := range n {
		payload = msgpack.AppendArrayHeader(payload, 2)
		payload = msgpack.AppendEventTime(payload, T0+int64(i/1000), int64(i%1000)*1000)
		payload = append(payload, r...)
	}
	return arr(str("docker.web"), bin(payload), obj(str("size"), num(int64(n)), str("chunk"), str("MTIzNDU2Nzg5MDEyMzQ1Ng==\n")))
}

func TestDockerRecordSize(t *testing.T) {
	if n := len(dockerRecord(250)); n != 250 {
		t.Fatalf("record is %d bytes", n)
	}
}

// BenchmarkDecodePackedForward frames and decodes a PackedForward request
// of 1000 Docker-shaped 250-byte records: the receiver's hot path without
// the socket.
func BenchmarkDecodePackedForward(b *testing.B) {
	const n = 1000
	req := packedRequest(n, 250)
	fr := newFramer(64<<20, 100)
	d := newDecoder(100, 256<<20)
	defer d.close()
	var r request
	run := func() {
		fr.reset()
		if k, err := fr.next(req); err != nil || k != len(req) {
			b.Fatalf("frame: %d %v", k, err)
		}
		if err := d.decode(req, event.Now(), &r); err != nil || len(r.events) != n {
			b.Fatalf("decode: %v, %d events", err, len(r.events))
		}
	}
	run()
	allocs := testing.AllocsPerRun(100, run)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(allocs/n, "allocs/record")
}

// BenchmarkDecodeForward is the same records in Forward mode (an array of
// entries, framed record by record).
func BenchmarkDecodeForward(b *testing.B) {
	const n = 1000
	r := dockerRecord(250)
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = entry(et(T0, int64(i)), r)
	}
	req := arr(str("docker.web"), arr(entries...), chunkOpt("c"))
	fr := newFramer(64<<20, 100)
	d := newDecoder(100, 256<<20)
	var rq request
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		fr.reset()
		if k, err := fr.next(req); err != nil || k != len(req) {
			b.Fatalf("frame: %d %v", k, err)
		}
		if err := d.decode(req, event.Now(), &rq); err != nil || len(rq.events) != n {
			b.Fatalf("decode: %v", err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeCompressed decodes PackedForward requests of 250-byte
// records compressed with gzip or zstd: 1000 records (about 330 KB
// inflated, a Fluent Bit flush) and 25000 (about 8 MB, a fluentd chunk at
// its default chunk_limit_size).
func BenchmarkDecodeCompressed(b *testing.B) {
	for _, kind := range []string{"gzip", "zstd"} {
		for _, n := range []int{1000, 25000} {
			b.Run(fmt.Sprintf("%s/records=%d", kind, n), func(b *testing.B) {
				plain := packedRequest(n, 250)
				_, p, _ := msgpack.ReadArrayHeader(plain)
				_, p, _ = msgpack.ReadStr(p)
				payload, _, _, _ := msgpack.ReadBytes(p)
				z := gz(payload)
				if kind == "zstd" {
					z = zst(payload)
				}
				req := arr(str("docker.web"), bin(z), obj(str("compressed"), str(kind), str("chunk"), str("c")))
				fr := newFramer(64<<20, 100)
				d := newDecoder(100, 256<<20)
				defer d.close()
				var rq request
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for b.Loop() {
					fr.reset()
					fr.next(req)
					if err := d.decode(req, event.Now(), &rq); err != nil || len(rq.events) != n {
						b.Fatalf("decode: %v", err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkFramer frames a 4 MiB Forward-mode request (16000 entries, so
// every record is walked) arriving whole, and in 4 KiB or 64-byte reads:
// MB/s must not fall with the read size, because the framer never rescans
// what it has seen.
func BenchmarkFramer(b *testing.B) {
	r := dockerRecord(250)
	entries := make([][]byte, 16000)
	for i := range entries {
		entries[i] = entry(et(T0, int64(i)), r)
	}
	req := arr(str("docker.web"), arr(entries...), chunkOpt("c"))
	for _, read := range []int{len(req), 4096, 64} {
		b.Run(fmt.Sprintf("read=%d", read), func(b *testing.B) {
			fr := newFramer(64<<20, 100)
			b.SetBytes(int64(len(req)))
			for b.Loop() {
				fr.reset()
				for end := read; ; end += read {
					end = min(end, len(req))
					k, err := fr.next(req[:end])
					if err != nil {
						b.Fatal(err)
					}
					if k > 0 {
						break
					}
				}
			}
		})
	}
}

type nopConsumer struct{}

func (nopConsumer) Consume(context.Context, *event.Batch) error { return nil }

// BenchmarkServerLoopback is the whole server path over loopback TCP: a
// client sends PackedForward requests of 1000 Docker-shaped records with a
// chunk option, and waits for each ack before the next (like fluentd with
// require_ack_response); the consumer does nothing. Several connections
// run at once.
func BenchmarkServerLoopback(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			const n = 1000
			ts := startServer(b, testSource(), nopConsumer{})
			req := packedRequest(n, 250)
			clients := make([]*client, conns)
			for i := range clients {
				clients[i] = dial(b, ts.Addr())
			}
			b.SetBytes(int64(len(req)))
			b.ResetTimer()
			var next = make(chan struct{})
			errs := make(chan error, conns)
			for _, c := range clients {
				go func() {
					for range next {
						if err := c.send(req, 0); err != nil {
							errs <- err
							return
						}
						if _, err := c.readAck(10 * time.Second); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range b.N {
				next <- struct{}{}
			}
			close(next)
			for range conns {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// countingConsumer counts the events it is handed.
type countingConsumer struct{ n atomic.Int64 }

func (c *countingConsumer) Consume(_ context.Context, b *event.Batch) error {
	c.n.Add(int64(len(b.Events)))
	return nil
}

// BenchmarkServerDockerLines is Docker's fluentd driver's shape: each of 1
// or 20 connections writes one Message-mode request per line (one write
// each, no ack, as fluent-logger-golang does), as fast as it can; the
// consumer only counts. cpu-ns/line is the process's CPU time (server and
// the emulated clients, whose write(2) per line is about half of it) per
// line.
func BenchmarkServerDockerLines(b *testing.B) {
	rec := dockerRecord(136) // `seq` output: a short log line
	line := arr(str("docker.app"), et(T0, 0), rec)
	for _, conns := range []int{1, 20} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			cc := &countingConsumer{}
			ts := startServer(b, testSource(), cc)
			clients := make([]*client, conns)
			for i := range clients {
				clients[i] = dial(b, ts.Addr())
			}
			cpu0 := processCPU()
			b.ResetTimer()
			errs := make(chan error, conns)
			for i, c := range clients {
				n := b.N / conns
				if i < b.N%conns {
					n++
				}
				go func() {
					for range n {
						if _, err := c.nc.Write(line); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range conns {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			for cc.n.Load() < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/line")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
