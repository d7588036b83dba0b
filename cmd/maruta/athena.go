package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/marutalog/maruta/athena"
	"github.com/marutalog/maruta/internal/config"
)

func init() {
	commands["athena"] = command{"print Athena DDL for the Parquet outputs, or run it (athena ddl|apply -c FILE)", cmdAthena}
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

const athenaApplyAbout = `Runs the DDL that "athena ddl" prints through the Athena API, one statement
after the other, each to its end: CREATE DATABASE IF NOT EXISTS and CREATE
EXTERNAL TABLE IF NOT EXISTS per Parquet output (and with -since, ALTER TABLE
... ADD COLUMNS: only on a table created at that schema version, as Athena
refuses to add a column twice). Running it again changes nothing. It stops
at the first statement that fails and says which output and why.

An output takes part when its athena block names a workgroup (with a query
result location of its own) or an output_location (s3://...), or both; the
others are listed on stderr and left out. The region is athena.region, else
the s3 output's region, else the AWS configuration's; credentials come from
the AWS configuration (environment, profile, instance role), as for the s3
output. AWS_ENDPOINT_URL_ATHENA points it at another endpoint. The columns
come from where "athena ddl" takes them (see maruta athena ddl -h).`

func cmdAthena(args []string, stdout, stderr io.Writer) int {
	c := newCLI("athena", "ddl|apply [flags]", "Subcommands:\n  ddl     print the Athena DDL of the config's Parquet outputs\n  apply   run that DDL through the Athena API")
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	if sub != "" && sub != "ddl" && sub != "apply" && !strings.HasPrefix(sub, "-") {
		return exitCode(c.usageError(stderr, "unknown subcommand %q", sub))
	}
	if sub != "ddl" && sub != "apply" {
		if _, err := c.parse(args, 0, stdout, stderr); err != nil {
			return exitCode(err)
		}
		return exitCode(c.usageError(stderr, "which subcommand?"))
	}
	about := athenaDDLAbout
	if sub == "apply" {
		about = athenaApplyAbout
	}
	c = newCLI("athena "+sub, "[-c FILE] [-output NAME,...] [-since VERSION] [-data-dir DIR] [-sample DIR]", about)
	file := c.configFlag("config file; none: the embedded default")
	outputs := c.fs.String("output", "", "comma-separated output names (default: every Parquet output)")
	since := c.fs.Int("since", -1, "also "+map[string]string{"ddl": "print", "apply": "run"}[sub]+" ALTER TABLE … ADD COLUMNS for columns added after this schema version")
	dataDir := c.fs.String("data-dir", "", "read persisted schemas from here instead of the config's data_dir")
	sample := c.fs.String("sample", "", "add the columns of the Parquet files under this folder (their footers only)")
	if _, err := c.parse(args[1:], 0, stdout, stderr); err != nil {
		return exitCode(err)
	}
	load := loadAthena
	if sub == "apply" {
		load = loadAthenaApply
	}
	cfg, _, err := loadConfigWith(*file, load)
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
	if sub == "apply" {
		return athenaApply(cfg, opts, stdout, stderr)
	}
	ddl, err := athena.DDL(cfg, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	io.WriteString(stdout, ddl)
	return 0
}

// athenaApply runs the statements of cfg's outputs, saying on stdout what
// each did. Ctrl-C stops it between two polls.
func athenaApply(cfg *config.Config, opts athena.DDLOptions, stdout, stderr io.Writer) int {
	sts, skipped, err := athena.Statements(cfg, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, o := range skipped {
		fmt.Fprintf(stderr, "output %s left out: its athena block names neither workgroup nor output_location\n", o)
	}
	if len(sts) == 0 {
		fmt.Fprintln(stderr, "nothing to apply: no Parquet output names athena.workgroup or athena.output_location")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	apis := map[string]athena.API{} // by region
	for _, st := range sts {
		api := apis[st.Region]
		if api == nil {
			if api, err = athena.NewAPI(ctx, st.Region); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			apis[st.Region] = api
		}
		if err := athena.Apply(ctx, api, []athena.Statement{st}, time.Second); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		first, _, _ := strings.Cut(st.SQL, "\n")
		fmt.Fprintf(stdout, "output %s: %s: done\n", st.Output, strings.TrimSuffix(first, " ("))
	}
	return 0
}
