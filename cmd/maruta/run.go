package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/marutalog/maruta/buffer"
	"github.com/marutalog/maruta/forward"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/router"
	"github.com/marutalog/maruta/sinks"
)

func init() {
	commands["run"] = command{"run the collector (embedded default config without -c)", cmdRun}
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config file: maruta YAML or a fluentd fluent.conf (default: the embedded default)")
	level := fs.String("log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	format := fs.String("log-format", "", "log format: text or json (overrides log.format)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger, err := newLogger(cfg.Log, *level, *format, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(cfg, logger, stdout)
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	if err := a.run(ctx); err != nil {
		logger.Error("stopped with error", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, level, format string, w io.Writer) (*slog.Logger, error) {
	if level == "" {
		level = c.Level
	}
	if format == "" {
		format = c.Format
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid log level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid log format %q (text or json)", format)
}

// app is one running pipeline: sources → router → buffers → sinks.
type app struct {
	cfg     *config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	sources []*forward.Server
	router  *router.Router
	buffers []*buffer.Buffer
	bufName []string
	sinks   []sinks.Sink
	http    *httpServer
}

// newApp builds every component from cfg without starting any goroutine.
// Listeners are bound here, so a busy port fails the start.
func newApp(cfg *config.Config, logger *slog.Logger, stdout io.Writer) (_ *app, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "maruta"}))
	a := &app{cfg: cfg, log: logger, reg: reg}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	hostname, _ := os.Hostname()

	outputs := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		opts := sinks.Options{Output: o, Node: cfg.Node, DataDir: cfg.DataDir, Logger: logger, Registerer: reg}
		switch {
		case o.Stdout != nil:
			outputs[o.Name] = sinks.NewStdout(stdout, opts)
			continue
		case o.Null != nil:
			outputs[o.Name] = sinks.NewNull(opts)
			continue
		}
		sink, err := newSink(opts)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		a.sinks = append(a.sinks, sink)
		var resolve func(string) string
		if p := outputPath(o); p != "" {
			resolve = sinks.TagResolver(p)
		}
		buf, err := buffer.New(buffer.Options{
			Name:          o.Name,
			Config:        *o.BufferConfig(),
			Sink:          sink,
			Node:          cfg.Node,
			ResolvePath:   resolve,
			DeadLetterDir: filepath.Join(cfg.DataDir, "deadletter", o.Name),
			Logger:        logger,
			Registerer:    reg,
		})
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		a.buffers = append(a.buffers, buf)
		a.bufName = append(a.bufName, o.Name)
		outputs[o.Name] = buf
	}

	a.router, err = router.New(router.Options{Config: cfg, Outputs: outputs, Hostname: hostname,
		Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Sources {
		srv, err := forward.NewServer(forward.ServerOptions{Config: s, Next: a.router, Hostname: hostname,
			Logger: logger, Registerer: reg})
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		a.sources = append(a.sources, srv)
	}
	if cfg.HTTP.Listen != "off" {
		a.http, err = newHTTPServer(cfg.HTTP, reg, a, logger.With("component", "http"))
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// newSink builds the sink of a buffered output.
func newSink(opts sinks.Options) (sinks.Sink, error) {
	return sinks.New(opts)
}

// outputPath returns the path template of outputs that have one.
func outputPath(o *config.Output) string {
	switch {
	case o.File != nil:
		return o.File.Path
	case o.S3 != nil:
		return o.S3.Path
	}
	return ""
}

// run starts every component and blocks until ctx is done or a component
// fails, then shuts down in stages:
//
//  1. sources stop accepting and finish the requests in flight (their acks);
//  2. the router hands on what it holds (partial lines);
//  3. buffers seal their chunks and flush until shutdown_timeout;
//  4. what is not delivered by then stays on disk for the next start.
func (a *app) run(ctx context.Context) error {
	deadline := a.cfg.ShutdownTimeout.D()
	fail := make(chan error, len(a.sources)+len(a.buffers)+2)

	bufCtx, bufCancel := context.WithCancel(context.Background())
	var bufWG sync.WaitGroup
	for i, b := range a.buffers {
		bufWG.Add(1)
		go func() {
			defer bufWG.Done()
			if err := b.Run(bufCtx); err != nil && !errors.Is(err, context.Canceled) {
				fail <- fmt.Errorf("buffer %s: %w", a.bufName[i], err)
			}
		}()
	}
	routerCtx, routerCancel := context.WithCancel(context.Background())
	routerDone := make(chan struct{})
	go func() {
		defer close(routerDone)
		if err := a.router.Run(routerCtx); err != nil && !errors.Is(err, context.Canceled) {
			fail <- fmt.Errorf("router: %w", err)
		}
	}()
	srcCtx, srcCancel := context.WithCancel(context.Background())
	var srcWG sync.WaitGroup
	for _, s := range a.sources {
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := s.Run(srcCtx); err != nil && !errors.Is(err, context.Canceled) {
				fail <- fmt.Errorf("source %s: %w", s.Addr(), err)
			}
		}()
	}
	if a.http != nil {
		go func() {
			if err := a.http.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail <- fmt.Errorf("http: %w", err)
			}
		}()
	}
	addrs := make([]string, len(a.sources))
	for i, s := range a.sources {
		addrs[i] = s.Addr().String()
	}
	httpAddr := "off"
	if a.http != nil {
		httpAddr = a.http.ln.Addr().String()
	}
	a.log.Info("maruta started", "version", version, "node", a.cfg.Node, "config", a.cfg.File,
		"listen", addrs, "http", httpAddr, "outputs", len(a.cfg.LeafOutputs()), "data_dir", a.cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	case runErr = <-fail:
		a.log.Error("component failed, shutting down", "err", runErr)
	}
	start := time.Now()
	left := func() time.Duration { return max(deadline-time.Since(start), 0) }

	// 1. Sources: stop accepting; requests in flight finish and are acked.
	// They may be blocked on a full buffer, so give them a third of the time.
	srcCancel()
	if !waitTimeout(&srcWG, left()/3) {
		a.log.Warn("requests still in flight, closing their connections unacknowledged")
		for _, s := range a.sources {
			s.Close()
		}
		srcWG.Wait()
	}
	// 2. Router: hand on held partial lines.
	dctx, dcancel := context.WithTimeout(context.Background(), left())
	if err := a.router.Drain(dctx); err != nil {
		a.log.Warn("router drain incomplete", "err", err)
	}
	routerCancel()
	<-routerDone
	// 3. Buffers: seal and flush until the deadline.
	var dwg sync.WaitGroup
	for i, b := range a.buffers {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			if err := b.Drain(dctx); err != nil {
				a.log.Warn("buffer not drained; the rest stays on disk for the next start", "output", a.bufName[i], "err", err)
			}
		}()
	}
	dwg.Wait()
	dcancel()
	bufCancel()
	bufWG.Wait()
	a.closeAll()
	a.log.Info("maruta stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return runErr
}

// closeAll releases sinks, listeners and the HTTP server. Safe after a
// failed newApp.
func (a *app) closeAll() {
	for _, s := range a.sources {
		s.Close()
	}
	for _, s := range a.sinks {
		if err := s.Close(); err != nil {
			a.log.Warn("close sink", "err", err)
		}
	}
	if a.http != nil {
		a.http.close()
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
