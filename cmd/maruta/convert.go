package main

import (
	"fmt"
	"io"
	"os"

	"github.com/marutalog/maruta/internal/fluentconf"
)

func init() {
	commands["convert"] = command{"print the maruta YAML equivalent of a fluentd fluent.conf", cmdConvert}
}

const convertAbout = `Prints the maruta YAML equivalent of a fluentd fluent.conf (maruta runs a
fluent.conf as it is, too: 'maruta run fluent.conf' converts it on start).
Environment references stay references (${VAR}); they need not be set.
Other problems of the result are printed as warnings on stderr.

  maruta convert fluent.conf > maruta.yaml`

func cmdConvert(args []string, stdout, stderr io.Writer) int {
	c := newCLI("convert", "[-c FILE | FILE]", convertAbout)
	file := c.configFlag("the fluent.conf to convert")
	pos, err := c.parse(args, 1, stdout, stderr)
	if err == nil {
		err = c.configArg(file, pos, stderr)
	}
	if err == nil && *file == "" {
		err = c.usageError(stderr, "no fluent.conf given")
	}
	if err != nil {
		return exitCode(err)
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !isFluentConf(*file, data) {
		fmt.Fprintf(stderr, "%s is not a fluent.conf (no .conf extension, and no <directive> first): maruta convert reads fluentd configs\n", *file)
		return 1
	}
	y, err := fluentconf.Convert(*file, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if _, _, err := loadFluentConf(*file, data, loadConvert); err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	stdout.Write(y)
	return 0
}
