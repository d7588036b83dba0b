package main

import (
	"context"
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

const runAbout = `Runs the collector: the config's Forward sources, pipeline and outputs, until
SIGTERM or SIGINT (SIGHUP reloads the config). Without a config it runs the
embedded default: Forward on 127.0.0.1:24224, Docker's split lines joined, JSON
log lines parsed into fields, Parquet under ./maruta-data/lake.

The config is a maruta YAML file or a fluentd fluent.conf: -c FILE, or FILE,
or $MARUTA_CONFIG. 'maruta -c FILE' (Fluent Bit's habit) is 'maruta run -c FILE'.

-dry-run (fluentd's --dry-run, Fluent Bit's -D) loads and checks the config as
run would, every unset variable an error, then exits: 0 when it would start.`

func cmdRun(args []string, stdout, stderr io.Writer) int {
	c := newCLI("run", "[-c FILE | FILE] [-dry-run] [-log-level L] [-log-format F]", runAbout)
	file := c.configFlag("config file: maruta YAML or a fluentd fluent.conf; none: the embedded default")
	level := c.fs.String("log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	format := c.fs.String("log-format", "", "log format: text or json (overrides log.format)")
	dry := c.fs.Bool("dry-run", false, "check the config as run would load it, then exit")
	c.fs.BoolVar(dry, "D", false, "same as -dry-run")
	pos, err := c.parse(args, 1, stdout, stderr)
	if err == nil {
		err = c.configArg(file, pos, stderr)
	}
	if err != nil {
		return exitCode(err)
	}
	if *dry {
		return checkConfig(*file, loadRun, stdout, stderr)
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
