package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/sinks"
)

func init() {
	commands["validate"] = command{"check a config file (maruta.yaml or fluent.conf) and exit", cmdValidate}
}

const validateAbout = `Checks a config file, maruta YAML or fluentd fluent.conf, and prints every
error it finds (file:line: key: what), sorted by line; exit 1 if there is one.
Every output's sink is built as run builds it (templates, TLS files), without
writing, starting or connecting anything.

An unset environment variable is a warning here, so CI can validate a config
without the production secrets; 'maruta run -dry-run' checks the config as
run loads it, where an unset variable is an error.`

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	c := newCLI("validate", "[-c FILE | FILE]", validateAbout)
	file := c.configFlag("config file: maruta YAML or a fluentd fluent.conf")
	pos, err := c.parse(args, 1, stdout, stderr)
	if err == nil {
		err = c.configArg(file, pos, stderr)
	}
	if err == nil && *file == "" {
		err = c.usageError(stderr, "no config file (give -c FILE or FILE, or set $MARUTA_CONFIG)")
	}
	if err != nil {
		return exitCode(err)
	}
	return checkConfig(*file, loadValidate, stdout, stderr)
}

// checkConfig loads a config as o says and prints its warnings and errors
// (stderr) or a summary (stdout).
func checkConfig(file string, o config.Options, stdout, stderr io.Writer) int {
	cfg, warnings, err := loadConfigWith(file, o)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %v\n", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if file == "" {
		file = cfg.File
	}
	fmt.Fprintf(stdout, "%s: ok (%d sources, %d pipeline steps, %d outputs)\n", file, len(cfg.Sources), len(cfg.Pipeline), len(cfg.LeafOutputs()))
	return 0
}

// checkOutputs builds the sink of every leaf output as run would (sinks
// check mode: nothing is written, removed, started or dialled) and closes
// it, so an output that would not start fails the check with file, line
// and key. Outputs the config already found errors in are skipped.
func checkOutputs(cfg *config.Config) config.Errors {
	var errs config.Errors
	log := slog.New(slog.DiscardHandler)
	keys := cfg.LeafOutputKeys()
	for i, o := range cfg.LeafOutputs() {
		k, ok := sinks.KindOf(o.Type)
		if cfg.Faulty(keys[i]) || !ok || k.Sink == nil {
			continue
		}
		s, err := k.Sink(outputOptions(cfg, o, log, prometheus.NewRegistry(), true))
		if err != nil {
			errs = append(errs, cfg.ComponentError(keys[i], err))
			continue
		}
		s.Close()
	}
	return errs
}

// joinErrors returns the errors of a and b as one error, nil for none.
func joinErrors(a, b config.Errors) error {
	if all := append(a, b...); len(all) > 0 {
		return all
	}
	return nil
}
