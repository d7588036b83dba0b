package sinks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/sinks/sinktest"
)

// TestRecordDigestDefinition checks the digest against its written
// definition, computed here byte by byte.
func TestRecordDigestDefinition(t *testing.T) {
	evs := []sinktest.Event{
		{Tag: "docker.web", Time: 1764000000123456789, Record: sinktest.Msgpack(t, map[string]any{"log": "a"})},
		{Tag: "docker.web", Time: 1764000001000000000, Record: sinktest.Msgpack(t, map[string]any{"log": "b", "n": 1})},
		{Tag: "k8s.other", Time: -5, Record: sinktest.Msgpack(t, map[string]any{})},
	}
	var stream []byte
	for _, e := range evs {
		stream = binary.AppendUvarint(stream, uint64(len(e.Tag)))
		stream = append(stream, e.Tag...)
		stream = binary.BigEndian.AppendUint64(stream, uint64(e.Time))
		stream = binary.AppendUvarint(stream, uint64(len(e.Record)))
		stream = append(stream, e.Record...)
	}
	want := fmt.Sprintf("xxh64:%016x", xxhash.Sum64(stream))

	dc := &digestChunk{Chunk: &sinktest.Chunk{Events: evs}}
	if err := dc.ensure(); err != nil {
		t.Fatal(err)
	}
	if dc.digest != want || dc.events != 3 {
		t.Errorf("digest %s (%d events), want %s (3)", dc.digest, dc.events, want)
	}
}

// TestDigestChunkKeepsCompleteScans: a scan an encoder stops (a one-pass
// attempt that misses its plan) sets no digest; the first complete scan
// does, and later scans leave it.
func TestDigestChunkKeepsCompleteScans(t *testing.T) {
	base := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	mc := &sinktest.Chunk{}
	for i := range 10 {
		mc.Events = append(mc.Events, sinktest.Event{Tag: "t", Time: event.Time(base.Add(time.Duration(i) * time.Second).UnixNano()),
			Record: sinktest.Msgpack(t, map[string]any{"i": i})})
	}
	dc := &digestChunk{Chunk: mc}
	stop := errors.New("stop")
	n := 0
	if err := dc.Scan(func(string, event.Time, []byte) error {
		if n++; n == 4 {
			return stop
		}
		return nil
	}); err != stop {
		t.Fatal(err)
	}
	if dc.digest != "" {
		t.Fatalf("an incomplete scan set the digest %s", dc.digest)
	}
	if err := dc.ensure(); err != nil {
		t.Fatal(err)
	}
	first := dc.digest
	other := &digestChunk{Chunk: &sinktest.Chunk{Events: mc.Events[:9]}}
	other.ensure()
	if first == "" || first == other.digest || dc.events != 10 {
		t.Errorf("digest %q of 10 events vs %q of 9", first, other.digest)
	}
	dc.Scan(func(string, event.Time, []byte) error { return nil })
	if dc.digest != first {
		t.Errorf("a second scan changed the digest")
	}
}

// BenchmarkRecordDigest is what the record digest costs the S3 sink per
// event (it runs inside the encoder's scan, so the scan itself is not its
// cost: scan_only measures that), on Docker-shaped records, to compare with
// BenchmarkParquetEncodeDocker's records/cpu-s (sinks/encode).
func BenchmarkRecordDigest(b *testing.B) {
	const n = 100000
	g := sinktest.NewDockerGen(7, 20, time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC), false)
	c := &sinktest.Chunk{}
	for i := 0; i < n; i++ {
		tag, tm, rec := g.Next(b, i)
		c.Events = append(c.Events, sinktest.Event{Tag: tag, Time: tm, Record: rec})
		c.ChunkInfo.Bytes += int64(len(rec))
	}
	for _, digest := range []bool{false, true} {
		name := map[bool]string{false: "scan_only", true: "scan_and_digest"}[digest]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(c.ChunkInfo.Bytes)
			cpu0 := cpuTime()
			for b.Loop() {
				var err error
				if digest {
					err = (&digestChunk{Chunk: c}).ensure()
				} else {
					err = c.Scan(func(string, event.Time, []byte) error { return nil })
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n*b.N), "cpu-ns/record")
		})
	}
}

// cpuTime returns the process's user+sys CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
