package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/marutalog/maruta/internal/fluentconf"
)

func init() {
	commands["convert"] = command{"print the maruta YAML equivalent of a fluentd fluent.conf", cmdConvert}
}

func cmdConvert(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: maruta convert fluent.conf > maruta.yaml") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	y, err := fluentconf.Convert(file, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// The result must load; environment variables it refers to need not be set.
	if _, err := loadFluentConf(file, data); err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	stdout.Write(y)
	return 0
}
