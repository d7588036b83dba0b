package sinks

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/sinks/encode"
	"github.com/marutalog/maruta/sinks/layout"
	"github.com/marutalog/maruta/sinks/schema"
)

// Options configure a sink.
type Options struct {
	// Output is a leaf output (file, s3 or forward for New) with defaults applied.
	Output *config.Output
	// Node names this maruta in object keys.
	Node string
	// DataDir is the config's data_dir: schemas persist under
	// <data_dir>/schema/, S3 uploads are staged under <data_dir>/tmp/.
	DataDir    string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// New builds the sink of a buffered output (file, s3, forward,
// cloudwatch_logs, syslog, treasure_data). It checks what only the sink
// can (templates, schema) and, for s3, loads the AWS configuration without
// contacting S3.
func New(opts Options) (delivery.Sink, error) {
	out := opts.Output
	if out == nil {
		return nil, fmt.Errorf("new sink: no output")
	}
	switch {
	case out.File != nil:
		return newFileSink(opts)
	case out.S3 != nil:
		return newS3Sink(opts)
	case out.Forward != nil:
		return NewForward(opts)
	case out.TreasureData != nil:
		return NewTreasureData(opts)
	case out.CloudWatchLogs != nil:
		return NewCloudWatchLogs(opts)
	case out.Syslog != nil:
		return NewSyslog(opts)
	}
	return nil, fmt.Errorf("new sink: output %s: type %s has no chunk sink here", out.Name, out.Type)
}

// common is what the file and s3 sinks share: the encoder and the keys.
type common struct {
	name    string
	enc     encode.Encoder
	keys    *layout.Keys
	log     *slog.Logger
	metrics *sinkMetrics
	size    *sizeTarget
}

func newCommon(opts Options, enc *config.Encoding, path, objectKey string, chunkKeys []string, tmpDir string) (*common, error) {
	out := opts.Output
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "sink", "output", out.Name)
	node := opts.Node
	if node == "" {
		node = config.DefaultNode()
	}
	kt, err := layout.NewKeys(path, objectKey, node, chunkKeys)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", out.Name, err)
	}
	c := &common{name: out.Name, keys: kt, log: log, metrics: newSinkMetrics(opts.Registerer, out.Name), size: newSizeTarget(enc)}
	switch enc.Format {
	case config.FormatParquet:
		var reserved []string
		var athena *config.Athena = enc.Athena
		if l, err := layout.Parse(path, athena); err == nil {
			for _, p := range l.Partitions {
				reserved = append(reserved, p.Name)
			}
		}
		store, err := schema.Open(opts.DataDir, out, reserved)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", out.Name, err)
		}
		pe, err := encode.NewParquet(enc, store, tmpDir, log)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", out.Name, err)
		}
		c.enc = pe
	case config.FormatJSONL:
		c.enc = encode.NewJSONL(enc.TimeKey, "", enc.TimeFormat, enc.Compression == config.CompressionGzip)
	default:
		return nil, fmt.Errorf("output %s: unknown format %q", out.Name, enc.Format)
	}
	for _, k := range []string{kindThrottle, kindServer, kindNetwork, kindPermanent, kindConflict, kindEncode, kindIO} {
		c.metrics.errors.WithLabelValues(k)
	}
	for _, r := range encode.OverflowReasons {
		c.metrics.overflow.WithLabelValues(r)
	}
	return c, nil
}

// logStats logs what encoding a chunk kept in the overflow column or
// skipped, once per chunk.
func (c *common) logStats(info delivery.ChunkInfo, st encode.Stats) {
	for reason, n := range st.Overflow {
		c.log.Warn("values kept as text in the overflow column", "chunk", info.ID, "reason", reason, "values", n, "keys", strings.Join(st.Samples[reason], ","))
	}
	if st.Invalid > 0 {
		c.log.Error("events dropped: record is not a msgpack map", "chunk", info.ID, "reason", "invalid_record", "events", st.Invalid)
	}
	if st.ColsAdded > 0 {
		c.log.Info("table schema grew", "chunk", info.ID, "columns_added", st.ColsAdded)
	}
}

// since returns the seconds since t, for duration histograms.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
