package main

import (
	"fmt"
	"io"

	"github.com/marutalog/maruta/internal/config"
)

func init() {
	commands["validate"] = command{"check a config file (maruta.yaml or fluent.conf) and exit", cmdValidate}
}

const validateAbout = `Checks a config file, maruta YAML or fluentd fluent.conf, and prints every
error it finds (file:line: key: what), sorted by line; exit 1 if there is one.

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
