package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/marutalog/maruta/athena"
)

func init() {
	commands["athena"] = command{"print Athena DDL for the Parquet outputs (athena ddl -c FILE)", cmdAthena}
}

func cmdAthena(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "ddl" {
		fmt.Fprintln(stderr, "usage: maruta athena ddl [-c FILE] [-output NAME,...] [-since VERSION] [-data-dir DIR]")
		return 2
	}
	fs := flag.NewFlagSet("athena ddl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", os.Getenv("MARUTA_CONFIG"), "config file (default: $MARUTA_CONFIG, else the embedded default)")
	outputs := fs.String("output", "", "comma-separated output names (default: every Parquet output)")
	since := fs.Int("since", -1, "also print ALTER TABLE … ADD COLUMNS for columns added after this schema version")
	dataDir := fs.String("data-dir", "", "read persisted schemas from here instead of the config's data_dir")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	opts := athena.DDLOptions{DataDir: *dataDir}
	if *outputs != "" {
		opts.Outputs = strings.Split(*outputs, ",")
	}
	if *since >= 0 {
		opts.Alter, opts.Since = true, *since
	}
	ddl, err := athena.DDL(cfg, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	io.WriteString(stdout, ddl)
	return 0
}
