package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/marutalog/maruta/athena"
)

func init() {
	commands["athena"] = command{"print Athena DDL for the Parquet outputs (athena ddl -c FILE)", cmdAthena}
}

const athenaDDLAbout = `Prints CREATE EXTERNAL TABLE, with partition projection, for every Parquet
output of the config (and with -since, ALTER TABLE ... ADD COLUMNS for the
columns added since that schema version). Columns come from the output's
declared schema (schema.columns: all of them in declared mode, the first ones
in auto mode), from the schema maruta persisted under data_dir/schema as it
wrote files, and with -sample DIR from the footers of the Parquet files under
DIR (a copy of the lake or of its S3 prefix; one output, see -output). Before
any of these exist a table has only time and _overflow. Only the outputs and
data_dir are read: the rest of the config need not be valid, nor its
variables set.

The tag partition column uses injected projection: every query must filter
on it with = or IN (WHERE tag = 'docker.web'); without it Athena refuses the
query: "CONSTRAINT_VIOLATION: For the injected projected partition column
tag, the WHERE clause must contain only static equality conditions, and at
least one such condition must be present."`

func cmdAthena(args []string, stdout, stderr io.Writer) int {
	c := newCLI("athena", "ddl [flags]", "Subcommands:\n  ddl   print the Athena DDL of the config's Parquet outputs")
	if len(args) > 0 && args[0] != "ddl" && !strings.HasPrefix(args[0], "-") {
		return exitCode(c.usageError(stderr, "unknown subcommand %q", args[0]))
	}
	if len(args) == 0 || args[0] != "ddl" {
		if _, err := c.parse(args, 0, stdout, stderr); err != nil {
			return exitCode(err)
		}
		return exitCode(c.usageError(stderr, "which subcommand?"))
	}
	c = newCLI("athena ddl", "[-c FILE] [-output NAME,...] [-since VERSION] [-data-dir DIR] [-sample DIR]", athenaDDLAbout)
	file := c.configFlag("config file; none: the embedded default")
	outputs := c.fs.String("output", "", "comma-separated output names (default: every Parquet output)")
	since := c.fs.Int("since", -1, "also print ALTER TABLE … ADD COLUMNS for columns added after this schema version")
	dataDir := c.fs.String("data-dir", "", "read persisted schemas from here instead of the config's data_dir")
	sample := c.fs.String("sample", "", "add the columns of the Parquet files under this folder (their footers only)")
	if _, err := c.parse(args[1:], 0, stdout, stderr); err != nil {
		return exitCode(err)
	}
	cfg, _, err := loadConfigWith(*file, loadAthena)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	opts := athena.DDLOptions{DataDir: *dataDir, Sample: *sample}
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
