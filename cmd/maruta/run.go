package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/marutalog/maruta/internal/config"
)

func init() {
	commands["run"] = command{"run the collector (embedded default config without -c)", cmdRun}
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", os.Getenv("MARUTA_CONFIG"), "config file: maruta YAML or a fluentd fluent.conf (default: $MARUTA_CONFIG, else the embedded default)")
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
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := newApp(cfg, *file, logger, stdout)
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	if err := a.run(ctx, hup); err != nil {
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
