package sinks

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
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
	// Check builds the sink only to check the output, as `maruta validate`
	// does: everything New checks is checked (templates, schema, TLS files,
	// the AWS configuration), but no file or folder is created or removed,
	// no goroutine started and no connection made. A missing AWS region is
	// not an error here: the host that runs the output supplies it. Close
	// the sink after.
	Check bool
}

// Kind is how one output type is built: a chunk sink behind a buffer, or
// an unbuffered consumer. Every type of config.OutputTypes but copy (whose
// stores are outputs of their own) has one.
type Kind struct {
	// Sink builds the sink of a buffered output.
	Sink func(Options) (delivery.Sink, error)
	// Consumer builds an unbuffered output that events go to directly;
	// stdout is where the stdout output writes.
	Consumer func(stdout io.Writer, opts Options) event.Consumer
}

// kinds is the table of output types: adding a type is one entry here
// (and its config in internal/config's output table).
var kinds = map[string]Kind{
	"file":            {Sink: func(o Options) (delivery.Sink, error) { return newFileSink(o) }},
	"s3":              {Sink: func(o Options) (delivery.Sink, error) { return newS3Sink(o) }},
	"forward":         {Sink: func(o Options) (delivery.Sink, error) { return NewForward(o) }},
	"treasure_data":   {Sink: func(o Options) (delivery.Sink, error) { return NewTreasureData(o) }},
	"cloudwatch_logs": {Sink: func(o Options) (delivery.Sink, error) { return NewCloudWatchLogs(o) }},
	"syslog":          {Sink: func(o Options) (delivery.Sink, error) { return NewSyslog(o) }},
	"stdout":          {Consumer: NewStdout},
	"null":            {Consumer: func(_ io.Writer, o Options) event.Consumer { return NewNull(o) }},
}

// KindOf returns how outputs of type typ are built.
func KindOf(typ string) (Kind, bool) {
	k, ok := kinds[typ]
	return k, ok
}

// New builds the sink of a buffered output (file, s3, forward,
// cloudwatch_logs, syslog, treasure_data). It checks what only the sink
// can (templates, schema, TLS files) and, for s3, loads the AWS
// configuration without contacting S3.
func New(opts Options) (delivery.Sink, error) {
	out := opts.Output
	if out == nil {
		return nil, fmt.Errorf("new sink: no output")
	}
	k, ok := kinds[out.Type]
	if !ok || k.Sink == nil {
		return nil, fmt.Errorf("new sink: output %s: type %s has no chunk sink here", out.Name, out.Type)
	}
	return k.Sink(opts)
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
