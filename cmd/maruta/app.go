package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/marutalog/maruta/buffer"
	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/router"
	"github.com/marutalog/maruta/sinks"
	"github.com/marutalog/maruta/sinks/layout"
)

// app is one running maruta: sources → front switch → router → output
// switches → buffers → sinks. A reload replaces the router and the sources
// and outputs whose config changed, keeping the rest running.
type app struct {
	file     string // config file to reload ("" = embedded default)
	stdout   io.Writer
	log      *slog.Logger
	reg      *prometheus.Registry
	regr     prometheus.Registerer
	hostname string
	http     *httpServer
	fail     chan error
	dedup    *dedup.Store // the Forward sources' dedup index (all of them)

	mu      sync.Mutex // serializes reload and shutdown; guards what follows
	cfg     *config.Config
	outputs map[string]*outputRun
	sources map[string]*sourceRun
	front   *switchConsumer
	rtr     *routerRun
	stopped bool
}

// outputRun is one leaf output: a buffer and its sink, or an unbuffered
// consumer (stdout, null), behind a switch that outlives reloads.
type outputRun struct {
	cfg    config.Output
	node   string
	slot   *switchConsumer
	target event.Consumer
	buf    *buffer.Buffer
	sink   delivery.Sink
	cancel context.CancelFunc
	done   chan struct{}
}

type sourceRun struct {
	cfg    config.Source
	srv    *forward.Server
	cancel context.CancelFunc
	done   chan struct{}
}

type routerRun struct {
	r      *router.Router
	cancel context.CancelFunc
	done   chan struct{}
}

// newApp builds every component from cfg without starting any goroutine.
// Listeners are bound here, so a busy port fails the start.
func newApp(cfg *config.Config, file string, logger *slog.Logger, stdout io.Writer) (_ *app, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "maruta"}))
	a := &app{file: file, stdout: stdout, log: logger, reg: reg, regr: replacingRegisterer{reg}, cfg: cfg,
		outputs: map[string]*outputRun{}, sources: map[string]*sourceRun{}, fail: make(chan error, 16)}
	a.hostname, _ = os.Hostname()
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	// The dedup index first: the buffers hand it the marks they recover.
	window, maxIDs := dedupLimits(cfg)
	a.dedup, err = dedup.Open(dedup.Options{Dir: filepath.Join(cfg.DataDir, "dedup"), Window: window, MaxEntries: maxIDs,
		Logger: logger, Registerer: a.regr})
	if err != nil {
		return nil, err
	}
	for _, o := range cfg.LeafOutputs() {
		or, err := a.buildOutput(cfg, o, nil)
		if err != nil {
			return nil, err
		}
		a.outputs[o.Name] = or
	}
	r, err := a.buildRouter(cfg, a.outputs)
	if err != nil {
		return nil, err
	}
	a.rtr = &routerRun{r: r}
	a.front = newSwitch(r)
	for _, s := range cfg.Sources {
		sr, err := a.buildSource(s)
		if err != nil {
			return nil, err
		}
		a.sources[s.Name] = sr
	}
	if cfg.HTTP.Listen != "off" {
		a.http, err = newHTTPServer(cfg.HTTP, reg, a, logger.With("component", "http"))
		if err != nil {
			return nil, err
		}
	}
	return a, nil
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
	return &sourceRun{cfg: s, srv: srv}, nil
}

// start runs a component's Run in a goroutine; its failure (other than by
// cancellation) ends the process through a.fail.
func (a *app) start(what string, run func(context.Context) error) (context.CancelFunc, chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			a.fail <- fmt.Errorf("%s: %w", what, err)
		}
	}()
	return cancel, done
}

func (a *app) startOutput(name string, or *outputRun) {
	if or.buf != nil {
		or.cancel, or.done = a.start("buffer "+name, or.buf.Run)
	}
}

func (a *app) startRouter(rr *routerRun) { rr.cancel, rr.done = a.start("router", rr.r.Run) }

func (a *app) startSource(name string, sr *sourceRun) {
	sr.cancel, sr.done = a.start("source "+name, sr.srv.Run)
}

// stopOutput stops a buffered output's workers (chunks stay on disk) and
// closes its sink.
func (a *app) stopOutput(or *outputRun) {
	if or.buf != nil {
		if or.cancel != nil {
			or.cancel()
			<-or.done
		} else {
			or.buf.Close()
		}
	}
	if or.sink != nil {
		if err := or.sink.Close(); err != nil {
			a.log.Warn("close sink", "output", or.cfg.Name, "err", err)
		}
	}
}

// stopSource stops accepting and lets the open connections read on until
// each has been quiet for the source's shutdown_quiet (handing on what they
// read and writing the acks due), for up to grace; then it closes the
// connections left (nothing more is acked on them).
func (a *app) stopSource(sr *sourceRun, grace time.Duration) {
	if sr.cancel == nil {
		sr.srv.Close()
		return
	}
	sr.cancel()
	select {
	case <-sr.done:
	case <-time.After(grace):
		a.log.Warn("connections still sending, closing them; what they send from now on is not stored", "source", sr.cfg.Name)
		sr.srv.Close()
		<-sr.done
	}
}

// run starts every component and blocks until ctx is done or a component
// fails, reloading on SIGHUP; then it shuts down in stages:
//
//  1. sources stop accepting and read each open connection on until it is
//     quiet (shutdown_quiet), storing what they read and writing the acks;
//  2. the router hands on what it holds (partial lines);
//  3. buffers seal their chunks and flush until shutdown_timeout;
//  4. what is not delivered by then stays on disk for the next start.
func (a *app) run(ctx context.Context, hup <-chan os.Signal) error {
	a.mu.Lock()
	for name, or := range a.outputs {
		a.startOutput(name, or)
	}
	a.startRouter(a.rtr)
	for name, sr := range a.sources {
		a.startSource(name, sr)
	}
	a.mu.Unlock()
	if a.http != nil {
		go func() {
			if err := a.http.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.fail <- fmt.Errorf("http: %w", err)
			}
		}()
	}
	httpAddr := "off"
	if a.http != nil {
		httpAddr = a.http.ln.Addr().String()
	}
	a.log.Info("maruta started", "version", version, "node", a.cfg.Node, "config", a.cfg.File,
		"listen", a.listenAddrs(), "http", httpAddr, "outputs", len(a.outputs), "data_dir", a.cfg.DataDir)

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
			break wait
		case runErr = <-a.fail:
			a.log.Error("component failed, shutting down", "err", runErr)
			break wait
		case <-hup:
			if err := a.reload(); err != nil {
				a.log.Error("reload failed; still running the previous config", "err", err)
			}
		}
	}
	a.shutdown()
	return runErr
}

func (a *app) listenAddrs() []string {
	var addrs []string
	for _, s := range a.cfg.Sources {
		if sr := a.sources[s.Name]; sr != nil {
			addrs = append(addrs, sr.srv.Addr().String())
		}
	}
	return addrs
}

func (a *app) shutdown() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	start := time.Now()
	deadline := a.cfg.ShutdownTimeout.D()
	left := func() time.Duration { return max(deadline-time.Since(start), 0) }

	// 1. Sources: stop accepting; read what clients already wrote until
	// each connection is quiet, for all of shutdown_timeout but a little
	// kept for sealing the buffers (what a source read is stored once its
	// chunk is sealed; delivery may wait for the next start).
	var wg sync.WaitGroup
	sourceTime := left() - min(left()/4, time.Second)
	for _, sr := range a.sources {
		wg.Go(func() { a.stopSource(sr, sourceTime) })
	}
	wg.Wait()
	// 2. Router: hand on held partial lines.
	dctx, dcancel := context.WithTimeout(context.Background(), left())
	defer dcancel()
	if err := a.rtr.r.Drain(dctx); err != nil {
		a.log.Warn("router drain incomplete", "err", err)
	}
	a.rtr.cancel()
	<-a.rtr.done
	// 3. Buffers: seal and flush until the deadline; the rest stays on disk.
	for name, or := range a.outputs {
		if or.buf == nil {
			continue
		}
		wg.Go(func() {
			if err := or.buf.Drain(dctx); err != nil {
				a.log.Warn("buffer not drained; the rest stays on disk for the next start", "output", name, "err", err)
			}
		})
	}
	wg.Wait()
	for _, or := range a.outputs {
		wg.Go(func() { a.stopOutput(or) })
	}
	wg.Wait()
	a.dedup.Close()
	if a.http != nil {
		a.http.close()
	}
	a.log.Info("maruta stopped", "took", time.Since(start).Round(time.Millisecond).String())
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

// closeAll releases what newApp built when it fails half-way.
func (a *app) closeAll() {
	for _, sr := range a.sources {
		sr.srv.Close()
	}
	for _, or := range a.outputs {
		a.stopOutput(or)
	}
	if a.dedup != nil {
		a.dedup.Close()
	}
	if a.http != nil {
		a.http.close()
	}
}

// reload reads the config file again. If it is invalid, nothing changes.
// Otherwise the router is rebuilt and swapped in; outputs and sources whose
// config is unchanged keep running (their buffers, connections and
// listeners untouched); changed ones are stopped and rebuilt (a changed
// output's new buffer recovers what the old one left on disk); removed ones
// are stopped (their chunks stay on disk); added ones are started.
func (a *app) reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return errors.New("shutting down")
	}
	cfg, err := loadConfig(a.file)
	if err != nil {
		return err
	}
	if err := checkComponents(cfg); err != nil {
		return err
	}
	if cfg.HTTP != a.cfg.HTTP || cfg.Log != a.cfg.Log {
		a.log.Warn("http and log settings change only on restart; keeping the current ones")
		cfg.HTTP, cfg.Log = a.cfg.HTTP, a.cfg.Log
	}
	a.log.Info("reloading", "config", cfg.File)
	a.dedup.SetLimits(dedupLimits(cfg))

	// Outputs: keep the unchanged, build the added (their folders are new).
	next := map[string]*outputRun{}
	var added, changed, kept []string
	for _, o := range cfg.LeafOutputs() {
		old := a.outputs[o.Name]
		switch {
		case old != nil && old.node == cfg.Node && reflect.DeepEqual(old.cfg, *o):
			next[o.Name] = old
			kept = append(kept, o.Name)
		case old != nil:
			changed = append(changed, o.Name)
			next[o.Name] = &outputRun{cfg: *o, node: cfg.Node, slot: old.slot}
		default:
			or, err := a.buildOutput(cfg, o, nil)
			if err != nil {
				for _, n := range added {
					a.stopOutput(next[n])
				}
				return err
			}
			next[o.Name] = or
			added = append(added, o.Name)
		}
	}
	r, err := a.buildRouter(cfg, next)
	if err != nil {
		for _, n := range added {
			a.stopOutput(next[n])
		}
		return err
	}
	for _, n := range added {
		a.startOutput(n, next[n])
	}
	// Swap the router; requests in flight finish on the old one.
	rr := &routerRun{r: r}
	a.startRouter(rr)
	oldR := a.rtr
	prev := a.front.swap(r)
	if !prev.waitIdle(10 * time.Second) {
		a.log.Warn("requests still in flight on the previous router after 10s")
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := oldR.r.Drain(dctx); err != nil {
		a.log.Warn("previous router drain incomplete", "err", err)
	}
	dcancel()
	oldR.cancel()
	<-oldR.done
	a.rtr = rr

	// Changed outputs: stop the old buffer (its chunks stay on disk), then
	// build the new one on the same folder, which recovers and sends them.
	for _, n := range changed {
		old := a.outputs[n]
		old.slot.swap(nil).waitIdle(10 * time.Second)
		a.stopOutput(old)
		or, err := a.buildOutput(cfg, &next[n].cfg, old.slot)
		if err != nil {
			a.log.Error("output could not be rebuilt; its events are refused (not acked) until the next reload", "output", n, "err", err)
			continue
		}
		a.startOutput(n, or)
		or.slot.swap(or.target)
		next[n] = or
	}
	var removed []string
	for n, old := range a.outputs {
		if next[n] == nil {
			old.slot.swap(nil).waitIdle(10 * time.Second)
			a.stopOutput(old)
			removed = append(removed, n)
			if old.buf != nil {
				a.log.Warn("output removed; its undelivered chunks stay on disk", "output", n, "path", old.cfg.BufferConfig().Path)
			}
		}
	}
	a.outputs = next

	// Sources: restart the changed, stop the removed, start the added.
	nextSrc := map[string]*sourceRun{}
	for _, s := range cfg.Sources {
		old := a.sources[s.Name]
		if old != nil && reflect.DeepEqual(old.cfg, s) {
			nextSrc[s.Name] = old
			continue
		}
		if old != nil {
			a.stopSource(old, 10*time.Second)
			delete(a.sources, s.Name)
		}
		sr, err := a.buildSource(s)
		if err != nil {
			a.log.Error("source could not be started", "source", s.Name, "err", err)
			continue
		}
		a.startSource(s.Name, sr)
		nextSrc[s.Name] = sr
	}
	for n, old := range a.sources {
		if nextSrc[n] == nil {
			a.stopSource(old, 10*time.Second)
		}
	}
	a.sources = nextSrc
	a.cfg = cfg
	a.log.Info("reloaded", "outputs_kept", kept, "outputs_changed", changed, "outputs_added", added, "outputs_removed", removed,
		"listen", a.listenAddrs())
	return nil
}
