package sinks

import (
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/sinks/layout"
)

// What the event transports (cloudwatch.go, syslog.go, treasuredata.go)
// share: their logger and node name, destination templates rendered per
// event, and cutting long messages at character boundaries.

// eventSinkBase is the part every event transport has.
type eventSinkBase struct {
	name, node string
	log        *slog.Logger
	sm         *sinkMetrics
}

func newEventSinkBase(opts Options) eventSinkBase {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	node := opts.Node
	if node == "" {
		node = config.DefaultNode()
	}
	out := opts.Output
	return eventSinkBase{name: out.Name, node: node, log: log.With("component", "sink", "output", out.Name),
		sm: newSinkMetrics(opts.Registerer, out.Name)}
}

// destTemplates renders the names a destination is chosen by (a log group
// and stream, a database and table) for an event. When no template reads
// the record or the event time, the result depends on the tag only and is
// cached per tag (bounded). clean makes a rendered value a valid name.
// Safe for concurrent use.
type destTemplates struct {
	ts     []*layout.EventTemplate
	clean  []func(string) string
	perTag bool
	cache  sync.Map // tag → destResult
	size   int
	mu     sync.Mutex
}

type destResult struct {
	names   []string
	missing string // the first placeholder without a value
}

func newDestTemplates(tmpls []string, clean []func(string) string) *destTemplates {
	d := &destTemplates{perTag: true, clean: clean}
	for _, s := range tmpls {
		t := layout.ParseEventTemplate(s)
		d.ts = append(d.ts, t)
		if t.UsesRecord() || t.UsesTime() {
			d.perTag = false
		}
	}
	return d
}

const maxDestCache = 4096

// render returns the cleaned names for one event, or the placeholder that
// had no value.
func (d *destTemplates) render(tag string, t event.Time, record []byte) destResult {
	if d.perTag {
		if r, ok := d.cache.Load(tag); ok {
			return r.(destResult)
		}
	}
	var r destResult
	var buf []byte
	for i, et := range d.ts {
		var missing string
		buf, missing = et.Render(buf[:0], tag, t, record)
		if missing != "" && r.missing == "" {
			r.missing = missing
		}
		r.names = append(r.names, d.clean[i](string(buf)))
	}
	if d.perTag {
		d.mu.Lock()
		if d.size++; d.size > maxDestCache {
			d.cache.Clear()
			d.size = 1
		}
		d.mu.Unlock()
		d.cache.Store(strings.Clone(tag), r)
	}
	return r
}

// cutUTF8 returns the longest prefix of s that is at most n bytes and
// does not end inside a UTF-8 sequence (at least one character when the
// first is longer than n, so a split always advances).
func cutUTF8(s []byte, n int) []byte {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	if i == 0 {
		_, size := utf8.DecodeRune(s)
		return s[:size]
	}
	return s[:i]
}

// splitUTF8 calls fn with consecutive pieces of s of at most n bytes each,
// cut at character boundaries; with truncate only the first.
func splitUTF8(s []byte, n int, truncate bool, fn func([]byte) error) error {
	for {
		p := cutUTF8(s, n)
		if err := fn(p); err != nil {
			return err
		}
		s = s[len(p):]
		if len(s) == 0 || truncate {
			return nil
		}
	}
}

// newOversizeCounter registers maruta_sink_oversize_messages_total of an
// event output (cloudwatch_logs, syslog).
func newOversizeCounter(opts Options) *prometheus.CounterVec {
	var r prometheus.Registerer = prometheus.NewRegistry()
	if opts.Registerer != nil {
		r = prometheus.WrapRegistererWith(prometheus.Labels{"output": opts.Output.Name}, opts.Registerer)
	}
	v := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "maruta_sink_oversize_messages_total", Help: "Messages longer than the output allows, by action: split (into several events or messages) or truncate.",
	}, []string{"action"}))
	v.WithLabelValues("split")
	v.WithLabelValues("truncate")
	return v
}
