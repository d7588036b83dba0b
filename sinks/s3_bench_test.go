package sinks

import (
	"context"
	"fmt"
	"testing"

	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/sinktest"
)

// BenchmarkS3Upload measures the s3 sink end to end against the local S3
// server (versitygw): encode a chunk of 50,000 Docker-shaped records,
// stage it, upload it with If-None-Match (a new chunk id each time, so
// every upload creates an object). jsonl objects are about 16 MB, above
// the 8 MiB multipart threshold set here, so they go up in parts.
func BenchmarkS3Upload(b *testing.B) {
	srv := tu.StartS3(b)
	srv.CreateBucket(b, "bench")
	for _, format := range []string{"parquet", "jsonl"} {
		b.Run(format, func(b *testing.B) {
			dir := b.TempDir()
			_, out := sinktest.Output(b, dir, fmt.Sprintf(`  - type: s3
    name: s3lake
    bucket: bench
    endpoint: %s
    access_key_id: %s
    secret_access_key: %s
    format: %s
    multipart_threshold: 8MiB
    part_size: 8MiB
`, srv.Endpoint, srv.AccessKey, srv.SecretKey, format))
			s, err := New(Options{Output: out, Node: "bench", DataDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const n = 50000
			c := dockerChunk(b, "c", out.S3.Path, n, false)
			for _, e := range c.Events {
				c.ChunkInfo.Bytes += int64(len(e.Record))
			}
			b.SetBytes(c.ChunkInfo.Bytes)
			i := 0
			for b.Loop() {
				i++
				c.ChunkInfo.ID = fmt.Sprintf("bench%s%06d", format, i)
				if err := s.Write(context.Background(), c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
