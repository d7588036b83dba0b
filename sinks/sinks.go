package sinks

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
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

// New builds the sink of a file, s3 or forward output. It checks what only the sink
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
	}
	return nil, fmt.Errorf("new sink: output %s: type %s has no chunk sink here", out.Name, out.Type)
}

// common is what the file and s3 sinks share: the encoder and the keys.
type common struct {
	name    string
	enc     encoder
	keys    *keyTemplate
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
	kt, err := newKeyTemplate(path, objectKey, node, chunkKeys)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", out.Name, err)
	}
	c := &common{name: out.Name, keys: kt, log: log, metrics: newSinkMetrics(opts.Registerer, out.Name), size: newSizeTarget(enc)}
	switch enc.Format {
	case "parquet":
		var reserved []string
		var athena *config.Athena = enc.Athena
		if l, err := PathLayout(path, athena); err == nil {
			for _, p := range l.Partitions {
				reserved = append(reserved, p.Name)
			}
		}
		store, err := schema.Open(opts.DataDir, out, reserved)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", out.Name, err)
		}
		pe, err := newParquetEncoder(enc, store, tmpDir, log)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", out.Name, err)
		}
		c.enc = pe
	case "jsonl":
		c.enc = newJSONLEncoder(enc)
	default:
		return nil, fmt.Errorf("output %s: unknown format %q", out.Name, enc.Format)
	}
	for _, k := range []string{kindThrottle, kindServer, kindNetwork, kindPermanent, kindConflict, kindEncode, kindIO} {
		c.metrics.errors.WithLabelValues(k)
	}
	for _, r := range overflowReasons {
		c.metrics.overflow.WithLabelValues(r)
	}
	return c, nil
}

// logStats logs what encoding a chunk kept in the overflow column or
// skipped, once per chunk.
func (c *common) logStats(info delivery.ChunkInfo, st encodeStats) {
	for reason, n := range st.overflow {
		c.log.Warn("values kept as text in the overflow column", "chunk", info.ID, "reason", reason, "values", n, "keys", strings.Join(st.samples[reason], ","))
	}
	if st.invalid > 0 {
		c.log.Error("events dropped: record is not a msgpack map", "chunk", info.ID, "reason", "invalid_record", "events", st.invalid)
	}
	if st.colsAdded > 0 {
		c.log.Info("table schema grew", "chunk", info.ID, "columns_added", st.colsAdded)
	}
}

// keyTemplate renders object keys (or file paths) for chunks.
type keyTemplate struct {
	path      string // the output's path template, for chunks without Path
	objectKey template
	node      string
}

func newKeyTemplate(path, objectKey, node string, chunkKeys []string) (*keyTemplate, error) {
	known := map[string]bool{}
	for _, k := range chunkKeys {
		known[k] = true
	}
	check := func(what string, t template, extra ...string) error {
		for _, tk := range t {
			if tk.kind != tokName || known[tk.name] {
				continue
			}
			ok := false
			for _, e := range extra {
				ok = ok || tk.name == e
			}
			if !ok {
				return fmt.Errorf("%s: unknown placeholder %s (known: ${tag}, ${tag_parts[N]}, %s and the buffer's chunk_keys)", what, tk.text, strings.Join(extra, ", "))
			}
		}
		return nil
	}
	if err := check("path", parseTemplate(path)); err != nil {
		return nil, err
	}
	ot := parseTemplate(objectKey)
	if err := check("object_key", ot, "path", "node", "hostname", "chunk_id", "ext"); err != nil {
		return nil, err
	}
	has := false
	for _, tk := range ot {
		has = has || tk.kind == tokName && tk.name == "chunk_id"
	}
	if !has {
		return nil, fmt.Errorf("object_key %q must contain ${chunk_id}", objectKey)
	}
	return &keyTemplate{path: path, objectKey: ot, node: SanitizeValue(node)}, nil
}

// render returns the object key of a chunk: the same chunk always gets the
// same key. Path and object key are rendered with the chunk's time slice
// (or, without one, its creation time) in UTC.
func (k *keyTemplate) render(info delivery.ChunkInfo, ext string) (string, error) {
	t := info.Slice
	if t.IsZero() {
		t = info.Created
	}
	t = t.UTC()
	v := &renderVars{t: t, tag: info.Tag, keys: info.Keys, strict: true}
	pt := info.Path
	if pt == "" {
		pt = k.path
	}
	path, err := parseTemplate(pt).render(v)
	if err != nil {
		return "", err
	}
	v.vars = map[string]string{
		"path": path, "node": k.node, "hostname": k.node, "chunk_id": SanitizeValue(info.ID), "ext": ext,
	}
	return k.objectKey.render(v)
}

// since returns the seconds since t, for duration histograms.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
