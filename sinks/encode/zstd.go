package encode

import (
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// pageZstd is the zstd codec of Parquet pages: the fastest level, one
// goroutine per encoder and a 1 MiB window. parquet-go's own codec keeps
// encoders with the level's default window (4–8 MiB of history each, one
// per core): in the 5-minute soak of BENCHMARKS.md those histories were
// 24 MB of a 57 MB heap. A page holds at most a few MiB and references
// rarely reach further back than 1 MiB, so files stay the same size
// (BenchmarkParquetEncodeDocker ratio) while the history shrinks to ~1 MiB
// per encoder.
type pageZstd struct {
	enc sync.Pool // *zstd.Encoder
	dec sync.Pool // *zstd.Decoder
}

const pageZstdWindow = 1 << 20

func (*pageZstd) String() string                            { return "ZSTD" }
func (*pageZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *pageZstd) Encode(dst, src []byte) ([]byte, error) {
	e, _ := c.enc.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(pageZstdWindow),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			return nil, err
		}
	}
	out := e.EncodeAll(src, dst[:0])
	c.enc.Put(e)
	return out, nil
}

func (c *pageZstd) Decode(dst, src []byte) ([]byte, error) {
	d, _ := c.dec.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
	}
	out, err := d.DecodeAll(src, dst[:0])
	c.dec.Put(d)
	return out, err
}
