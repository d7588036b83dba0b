package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/lifecycle"
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

// newApp builds every component from cfg (buildGraph) and the HTTP server,
// without starting any goroutine. Listeners are bound here, so a busy port
// fails the start.
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
	if err := a.buildGraph(cfg); err != nil {
		return nil, err
	}
	if cfg.HTTP.Listen != "off" {
		a.http, err = newHTTPServer(cfg.HTTP, reg, a, logger.With("component", "http"))
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// parts returns the graph's running parts in start order: outputs first,
// then the router, then the sources (each stage's consumers run before
// anything hands it events). Shutdown stops them in the reverse order.
func (a *app) parts() (outputs, router, sources []*part) {
	for _, or := range a.outputs {
		outputs = append(outputs, &or.part)
	}
	if a.rtr != nil {
		router = []*part{&a.rtr.part}
	}
	for _, sr := range a.sources {
		sources = append(sources, &sr.part)
	}
	return outputs, router, sources
}

// start runs p's component on its own goroutine; its failure (other than
// by being stopped) ends the process through a.fail.
func (a *app) start(p *part) {
	if p.comp == nil {
		return
	}
	p.run = lifecycle.Start(p.comp, func(err error) { a.fail <- fmt.Errorf("%s: %w", p.label, err) })
}

// stop stops parts gracefully, all at once: each drains until ctx ends
// (then what it still holds is dropped or, for a buffer, kept on disk) and
// stops. A part never started is released.
func (a *app) stop(ctx context.Context, parts ...*part) {
	var wg sync.WaitGroup
	for _, p := range parts {
		switch {
		case p.run != nil:
			wg.Go(func() {
				if err := p.run.Stop(ctx); err != nil {
					a.log.Warn(p.drainWarn, "component", p.label, "err", err)
				}
			})
		case p.comp != nil:
			p.comp.Close()
		}
	}
	wg.Wait()
}

// halt stops p without draining it (a buffer's chunks stay on disk), or
// releases it when it never started.
func (a *app) halt(p *part) {
	switch {
	case p.run != nil:
		p.run.Halt()
	case p.comp != nil:
		p.comp.Close()
	}
}

// closeSink closes a buffered output's sink once its buffer has stopped.
func (a *app) closeSink(or *outputRun) {
	if or.sink != nil {
		if err := or.sink.Close(); err != nil {
			a.log.Warn("close sink", "output", or.cfg.Name, "err", err)
		}
	}
}

// stopOutput stops an output without draining it (its chunks stay on disk)
// and closes its sink.
func (a *app) stopOutput(or *outputRun) {
	a.halt(&or.part)
	a.closeSink(or)
}

// run starts every component and blocks until ctx is done or a component
// fails, reloading on SIGHUP; then it shuts down in stages (shutdown).
func (a *app) run(ctx context.Context, hup <-chan os.Signal) error {
	a.mu.Lock()
	outputs, router, sources := a.parts()
	for _, p := range slices.Concat(outputs, router, sources) {
		a.start(p)
	}
	httpAddr := "off"
	if a.http != nil {
		httpAddr = a.http.ln.Addr().String()
	}
	a.log.Info("maruta started", "version", version, "node", a.cfg.Node, "config", a.cfg.File,
		"listen", a.listenAddrs(), "http", httpAddr, "outputs", len(a.outputs), "data_dir", a.cfg.DataDir)
	a.mu.Unlock()
	if a.http != nil { // serves /-/reload: from now on a.cfg is read under a.mu only
		go func() {
			if err := a.http.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.fail <- fmt.Errorf("http: %w", err)
			}
		}()
	}

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down", "timeout", a.shutdownTimeout().String())
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

// shutdownTimeout is the current config's shutdown_timeout (a reload on
// the HTTP server may change a.cfg meanwhile).
func (a *app) shutdownTimeout() config.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.ShutdownTimeout
}

// shutdown stops the graph in stages, each drained before the next:
//
//  1. sources stop accepting and read each open connection on until it is
//     quiet (shutdown_quiet), storing what they read and writing the acks,
//     for all of shutdown_timeout but a little kept for sealing the buffers
//     (what a source read is stored once its chunk is sealed; delivery may
//     wait for the next start);
//  2. the router hands on what it holds (partial lines);
//  3. buffers seal their chunks and flush until shutdown_timeout;
//  4. what is not delivered by then stays on disk for the next start.
func (a *app) shutdown() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	start := time.Now()
	deadline := start.Add(a.cfg.ShutdownTimeout.D())
	left := max(time.Until(deadline), 0)
	outputs, router, sources := a.parts()

	sctx, scancel := context.WithTimeout(context.Background(), left-min(left/4, time.Second))
	a.stop(sctx, sources...)
	scancel()
	dctx, dcancel := context.WithDeadline(context.Background(), deadline)
	defer dcancel()
	a.stop(dctx, router...)
	a.stop(dctx, outputs...)
	for _, or := range a.outputs {
		a.closeSink(or)
	}
	a.dedup.Close()
	if a.http != nil {
		a.http.close()
	}
	a.log.Info("maruta stopped", "took", time.Since(start).Round(time.Millisecond).String())
}

// closeAll releases what newApp built when it fails half-way.
func (a *app) closeAll() {
	for _, sr := range a.sources {
		a.halt(&sr.part)
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
	cfg, err := a.nextConfig()
	if err != nil {
		return err
	}
	a.log.Info("reloading", "config", cfg.File)
	a.dedup.SetLimits(dedupLimits(cfg))
	plan := a.planOutputs(cfg)
	if err := a.buildAdded(cfg, plan); err != nil {
		return err
	}
	rr, err := a.newRouter(cfg, plan.next)
	if err != nil {
		a.stopAdded(plan)
		return err
	}
	for _, n := range plan.added {
		a.start(&plan.next[n].part)
	}
	a.swapRouter(rr)
	a.rebuildChanged(cfg, plan)
	a.removeOutputs(plan)
	a.outputs = plan.next
	a.reloadSources(cfg)
	a.cfg = cfg
	a.log.Info("reloaded", "outputs_kept", plan.kept, "outputs_changed", plan.changed, "outputs_added", plan.added,
		"outputs_removed", plan.removed, "listen", a.listenAddrs())
	return nil
}

// reloadWait bounds each wait of a reload: for requests in flight on a
// swapped-out target, for the old router's drain, for a changed source's.
const reloadWait = 10 * time.Second

// nextConfig loads and checks the config file for a reload. http and log
// settings change only on restart: the current ones are kept.
func (a *app) nextConfig() (*config.Config, error) {
	cfg, err := loadConfig(a.file)
	if err != nil {
		return nil, err
	}
	if err := checkComponents(cfg); err != nil {
		return nil, err
	}
	if cfg.HTTP != a.cfg.HTTP || cfg.Log != a.cfg.Log {
		a.log.Warn("http and log settings change only on restart; keeping the current ones")
		cfg.HTTP, cfg.Log = a.cfg.HTTP, a.cfg.Log
	}
	return cfg, nil
}

// outputPlan is what a reload does to the outputs. next holds the outputs
// after it: the kept ones, placeholders (config and switch only) for the
// changed and added ones until they are built.
type outputPlan struct {
	next                          map[string]*outputRun
	cfgs                          map[string]*config.Output // of the added
	kept, changed, added, removed []string
}

// planOutputs sorts cfg's outputs into kept (same config, running),
// changed and added, and the running ones cfg lacks into removed. An output
// whose rebuild failed at an earlier reload (no target) counts as changed,
// so this reload builds it again.
func (a *app) planOutputs(cfg *config.Config) *outputPlan {
	p := &outputPlan{next: map[string]*outputRun{}, cfgs: map[string]*config.Output{}}
	for _, o := range cfg.LeafOutputs() {
		old := a.outputs[o.Name]
		switch {
		case old != nil && old.target != nil && old.node == cfg.Node && reflect.DeepEqual(old.cfg, *o):
			p.next[o.Name] = old
			p.kept = append(p.kept, o.Name)
		case old != nil:
			p.changed = append(p.changed, o.Name)
			p.next[o.Name] = &outputRun{cfg: *o, node: cfg.Node, slot: old.slot}
		default:
			p.added = append(p.added, o.Name)
			p.cfgs[o.Name] = o
		}
	}
	for n := range a.outputs {
		if p.next[n] == nil {
			p.removed = append(p.removed, n)
		}
	}
	return p
}

// buildAdded builds the added outputs (their folders are new, so nothing
// running is touched). On an error it releases those built and changes
// nothing.
func (a *app) buildAdded(cfg *config.Config, p *outputPlan) error {
	for i, n := range p.added {
		or, err := a.newOutput(cfg, p.cfgs[n], nil)
		if err != nil {
			a.stopAdded(&outputPlan{next: p.next, added: p.added[:i]})
			return err
		}
		p.next[n] = or
	}
	return nil
}

// stopAdded releases the added outputs of a reload that failed.
func (a *app) stopAdded(p *outputPlan) {
	for _, n := range p.added {
		a.stopOutput(p.next[n])
	}
}

// swapRouter starts rr and swaps it in front; requests in flight finish on
// the old router, which then hands on what it holds and stops.
func (a *app) swapRouter(rr *routerRun) {
	a.start(&rr.part)
	old := a.rtr
	if !a.front.swap(rr.r).waitIdle(reloadWait) {
		a.log.Warn("requests still in flight on the previous router after 10s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadWait)
	a.stop(ctx, &old.part)
	cancel()
	a.rtr = rr
}

// rebuildChanged stops each changed output's old buffer (its chunks stay on
// disk) and builds the new one on the same folder, which recovers and sends
// them.
func (a *app) rebuildChanged(cfg *config.Config, p *outputPlan) {
	for _, n := range p.changed {
		old := a.outputs[n]
		old.slot.swap(nil).waitIdle(reloadWait)
		a.stopOutput(old)
		or, err := a.newOutput(cfg, &p.next[n].cfg, old.slot)
		if err != nil {
			a.log.Error("output could not be rebuilt; its events are refused (not acked) until the next reload", "output", n, "err", err)
			continue
		}
		a.start(&or.part)
		or.slot.swap(or.target)
		p.next[n] = or
	}
}

// removeOutputs stops the removed outputs; their chunks stay on disk.
func (a *app) removeOutputs(p *outputPlan) {
	for _, n := range p.removed {
		old := a.outputs[n]
		old.slot.swap(nil).waitIdle(reloadWait)
		a.stopOutput(old)
		if old.buf != nil {
			a.log.Warn("output removed; its undelivered chunks stay on disk", "output", n, "path", old.cfg.BufferConfig().Path)
		}
	}
}

// reloadSources restarts the changed sources, stops the removed ones and
// starts the added ones; unchanged ones keep their listeners and
// connections.
func (a *app) reloadSources(cfg *config.Config) {
	next := map[string]*sourceRun{}
	for _, s := range cfg.Sources {
		old := a.sources[s.Name]
		if old != nil && reflect.DeepEqual(old.cfg, s) {
			next[s.Name] = old
			continue
		}
		if old != nil {
			a.stopSource(old)
			delete(a.sources, s.Name)
		}
		sr, err := a.buildSource(s)
		if err != nil {
			a.log.Error("source could not be started", "source", s.Name, "err", err)
			continue
		}
		a.start(&sr.part)
		next[s.Name] = sr
	}
	for n, old := range a.sources {
		if next[n] == nil {
			a.stopSource(old)
		}
	}
	a.sources = next
}

// stopSource stops a source gracefully: it stops accepting and reads each
// open connection on until quiet, for up to reloadWait; then it closes the
// connections left.
func (a *app) stopSource(sr *sourceRun) {
	ctx, cancel := context.WithTimeout(context.Background(), reloadWait)
	defer cancel()
	a.stop(ctx, &sr.part)
}
