package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/buffer"
	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/lifecycle"
	"github.com/marutalog/maruta/router"
	"github.com/marutalog/maruta/sinks"
	"github.com/marutalog/maruta/sinks/layout"
)

// This file builds the graph a config describes, without starting it:
//
//	sources → front switch → router → output switches → buffers → sinks
//
// The sources hold the front switch, whose target is the router; the router
// holds one switch per output, whose target is that output's buffer (or its
// unbuffered consumer: stdout, null). The switches outlive reloads (see
// switch.go). Every part that runs — a source, the router, a buffer — is a
// lifecycle.Component in a part, which app.go starts, drains and stops the
// same way whatever its kind.

// part is one running component of the graph.
type part struct {
	label     string              // "source NAME", "router", "output NAME": for logs
	comp      lifecycle.Component // nil: nothing runs (stdout, null outputs; a failed rebuild)
	run       *lifecycle.Runner   // set once started
	drainWarn string              // logged when a graceful stop runs out of time
}

// outputRun is one leaf output: a buffer and its sink, or an unbuffered
// consumer (stdout, null), behind a switch that outlives reloads.
type outputRun struct {
	part
	cfg    config.Output
	node   string
	slot   *switchConsumer
	target event.Consumer
	buf    *buffer.Buffer
	sink   delivery.Sink
}

type sourceRun struct {
	part
	cfg config.Source
	srv *forward.Server
}

type routerRun struct {
	part
	r *router.Router
}

// buildGraph builds every component of cfg without starting any goroutine:
// the dedup index, the outputs, the router, the front switch and the
// sources. Listeners are bound here, so a busy port fails the start. On an
// error the caller releases what was built (closeAll).
func (a *app) buildGraph(cfg *config.Config) (err error) {
	// The dedup index first: the buffers hand it the marks they recover.
	window, maxIDs := dedupLimits(cfg)
	a.dedup, err = dedup.Open(dedup.Options{Dir: filepath.Join(cfg.DataDir, "dedup"), Window: window, MaxEntries: maxIDs,
		Logger: a.log, Registerer: a.regr})
	if err != nil {
		return err
	}
	for _, o := range cfg.LeafOutputs() {
		or, err := a.newOutput(cfg, o, nil)
		if err != nil {
			return err
		}
		a.outputs[o.Name] = or
	}
	a.rtr, err = a.newRouter(cfg, a.outputs)
	if err != nil {
		return err
	}
	a.front = newSwitch(a.rtr.r)
	for _, s := range cfg.Sources {
		sr, err := a.buildSource(s)
		if err != nil {
			return err
		}
		a.sources[s.Name] = sr
	}
	return nil
}

// newOutput builds one leaf output (buildOutput) and names the component
// that runs in it.
func (a *app) newOutput(cfg *config.Config, o *config.Output, slot *switchConsumer) (*outputRun, error) {
	or, err := a.buildOutput(cfg, o, slot)
	if err != nil {
		return nil, err
	}
	or.label = "output " + o.Name
	or.drainWarn = "buffer not drained; the rest stays on disk for the next start"
	if or.buf != nil {
		or.comp = or.buf
	}
	return or, nil
}

// buildOutput makes the consumer of one leaf output. slot is the output's
// existing switch on a reload, nil at start.
func (a *app) buildOutput(cfg *config.Config, o *config.Output, slot *switchConsumer) (*outputRun, error) {
	or := &outputRun{cfg: *o, node: cfg.Node, slot: slot}
	opts := outputOptions(cfg, o, a.log, a.regr, false)
	kind, ok := sinks.KindOf(o.Type)
	switch {
	case !ok:
		return nil, fmt.Errorf("output %s: unknown type %s", o.Name, o.Type)
	case kind.Consumer != nil:
		or.target = kind.Consumer(a.stdout, opts)
	default:
		sink, err := newSink(opts)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		var resolve func(string) string
		if p := o.ChunkPath(); p != "" {
			resolve = layout.TagResolver(p)
		}
		var sealSize func() int64
		if st, ok := sink.(delivery.SizeTarget); ok {
			sealSize = st.TargetChunkBytes
		}
		buf, err := buffer.New(buffer.Options{
			SealSize:      sealSize,
			Name:          o.Name,
			Config:        *o.BufferConfig(),
			Sink:          sink,
			Node:          cfg.Node,
			ResolvePath:   resolve,
			DeadLetterDir: filepath.Join(cfg.DataDir, "deadletter", o.Name),
			Logger:        a.log,
			Registerer:    a.regr,
			Dedup:         a.dedup,
		})
		if err != nil {
			sink.Close()
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		or.sink, or.buf, or.target = sink, buf, buf
	}
	if or.slot == nil {
		or.slot = newSwitch(or.target)
	}
	return or, nil
}

// outputOptions are the sink options of output o; check builds it only to
// check it (validate).
func outputOptions(cfg *config.Config, o *config.Output, log *slog.Logger, reg prometheus.Registerer, check bool) sinks.Options {
	return sinks.Options{Output: o, Node: cfg.Node, DataDir: cfg.DataDir, Logger: log, Registerer: reg, Check: check}
}

// newSink builds the sink of a buffered output.
func newSink(opts sinks.Options) (delivery.Sink, error) {
	return sinks.New(opts)
}

func (a *app) buildRouter(cfg *config.Config, outputs map[string]*outputRun) (*router.Router, error) {
	cons := make(map[string]event.Consumer, len(outputs))
	for name, or := range outputs {
		cons[name] = or.slot
	}
	return router.New(router.Options{Config: cfg, Outputs: cons, Hostname: a.hostname, Logger: a.log, Registerer: a.regr})
}

func (a *app) buildSource(s config.Source) (*sourceRun, error) {
	srv, err := forward.NewServer(forward.ServerOptions{Config: s, Next: a.front, Hostname: a.hostname, Logger: a.log,
		Registerer: a.regr, Dedup: a.dedup})
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s.Name, err)
	}
	return &sourceRun{part: part{label: "source " + s.Name, comp: srv,
		drainWarn: "connections still sending, closing them; what they send from now on is not stored"}, cfg: s, srv: srv}, nil
}

// newRouter builds the router in front of outputs' switches.
func (a *app) newRouter(cfg *config.Config, outputs map[string]*outputRun) (*routerRun, error) {
	r, err := a.buildRouter(cfg, outputs)
	if err != nil {
		return nil, err
	}
	return &routerRun{part: part{label: "router", comp: r, drainWarn: "router drain incomplete"}, r: r}, nil
}

// dedupLimits returns the dedup index's bounds: the largest window and
// max_entries of the sources with dedup on (the defaults when none is).
func dedupLimits(cfg *config.Config) (time.Duration, int) {
	window, maxIDs := time.Duration(0), 0
	for _, s := range cfg.Sources {
		if d := s.Dedup; d.On() {
			window, maxIDs = max(window, d.Window.D()), max(maxIDs, d.MaxEntries)
		}
	}
	if window <= 0 {
		window = config.DefaultDedupWindow
	}
	if maxIDs <= 0 {
		maxIDs = config.DefaultDedupMaxEntries
	}
	return window, maxIDs
}

// checkComponents builds every component the config describes without
// starting it, so what only components can check (tag patterns, regular
// expressions, templates, TLS files) is reported with the config's other
// errors.
func checkComponents(cfg *config.Config) error {
	host, _ := os.Hostname()
	_, err := router.New(router.Options{Config: cfg, Hostname: host,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	errs := config.AsErrors(err)
	if err != nil && errs == nil {
		return err
	}
	return joinErrors(errs, checkOutputs(cfg))
}
