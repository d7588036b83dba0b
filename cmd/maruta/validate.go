package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func init() {
	commands["validate"] = command{"check a config file (maruta.yaml or fluent.conf) and exit", cmdValidate}
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", os.Getenv("MARUTA_CONFIG"), "config file, YAML or a fluentd fluent.conf (default: $MARUTA_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "maruta validate: -c FILE is required")
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := checkComponents(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d sources, %d pipeline steps, %d outputs)\n", *file, len(cfg.Sources), len(cfg.Pipeline), len(cfg.LeafOutputs()))
	return 0
}
