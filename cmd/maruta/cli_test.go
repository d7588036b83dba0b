package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/testutil"
)

// The command line as users of fluentd and Fluent Bit type it, through the
// real binary (README "Command line").

// TestCLIHelp: -h, -help and --help print the usage on stdout and exit 0,
// for every command and subcommand.
func TestCLIHelp(t *testing.T) {
	cmds := [][]string{{}, {"run"}, {"validate"}, {"convert"}, {"athena"}, {"athena", "ddl"}, {"athena", "apply"}, {"healthcheck"},
		{"reload"}, {"deadletter"}, {"deadletter", "list"}, {"deadletter", "resend"}, {"bench"}, {"version"}}
	for _, cmd := range cmds {
		for _, h := range []string{"-h", "-help", "--help"} {
			args := append(append([]string{}, cmd...), h)
			code, out, errs := runCLI(t, args...)
			if code != 0 || !strings.HasPrefix(out, "usage: maruta") || errs != "" {
				t.Errorf("maruta %s: exit %d, stdout %.60q, stderr %q", strings.Join(args, " "), code, out, errs)
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"help", "run"}} {
		if code, out, _ := runCLI(t, args...); code != 0 || !strings.HasPrefix(out, "usage: maruta") {
			t.Errorf("maruta %s: exit %d, stdout %.60q", strings.Join(args, " "), code, out)
		}
	}
	if _, out, _ := runCLI(t, "help", "run"); !strings.Contains(out, "-dry-run") {
		t.Errorf("maruta help run does not show run's flags:\n%s", out)
	}
}

func TestCLIVersionFlags(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}, {"version"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "maruta ") || !strings.Contains(out, "commit") || errs != "" {
			t.Errorf("maruta %s: exit %d, stdout %q, stderr %q", args[0], code, out, errs)
		}
	}
}

// TestCLIUsageErrors: a stray argument, an unknown flag or subcommand, a
// config given twice is one line on stderr that names the command and its
// usage, exit 2, and nothing runs.
func TestCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "m.yaml", minimalConfig(dir, "off"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", cfg, "extra"}, `maruta run: unexpected argument "extra"`},
		{[]string{"run", "-c", cfg, "extra"}, `maruta run: the config is given twice (-c ` + cfg + ` and extra)`},
		{[]string{"-c", cfg, "extra"}, `maruta run: the config is given twice`},
		{[]string{"run", "-frobnicate"}, `maruta run: flag provided but not defined: -frobnicate`},
		{[]string{"validate", cfg, cfg}, `maruta validate: unexpected argument`},
		{[]string{"validate"}, `maruta validate: no config file`},
		{[]string{"convert", "a.conf", "b.conf"}, `maruta convert: unexpected argument "b.conf"`},
		{[]string{"athena"}, `maruta athena: which subcommand?`},
		{[]string{"athena", "dll"}, `maruta athena: unknown subcommand "dll"`},
		{[]string{"athena", "ddl", "-c", cfg, "extra"}, `maruta athena ddl: unexpected argument "extra"`},
		{[]string{"healthcheck", "extra"}, `maruta healthcheck: unexpected argument "extra"`},
		{[]string{"reload", "extra"}, `maruta reload: unexpected argument "extra"`},
		{[]string{"deadletter", "list", "extra"}, `maruta deadletter list: unexpected argument "extra"`},
		{[]string{"version", "extra"}, `maruta version: unexpected argument "extra"`},
		{[]string{"frobnicate"}, `maruta: unknown command "frobnicate"`},
		{[]string{cfg}, `maruta: unknown command "` + cfg + `" (to run this config: maruta run ` + cfg + `)`},
	} {
		code, out, errs := runCLI(t, tc.args...)
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		if code != 2 || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("maruta %s: exit %d, stdout %q, stderr %q; want exit 2 and one line starting %q",
				strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
		if tc.args[0] != "frobnicate" && tc.args[0] != cfg && !strings.Contains(lines[0], "(usage: maruta ") {
			t.Errorf("maruta %s: the error does not give the usage: %q", strings.Join(tc.args, " "), lines[0])
		}
	}
}

// minimalConfig is a config that runs anywhere: Forward on a free port, the
// given HTTP address, data under dir, a null output.
func minimalConfig(dir, httpListen string) string {
	return fmt.Sprintf("data_dir: %s/data\nlog: {format: json}\nhttp: {listen: %q}\nsources:\n  - type: forward\n    listen: 127.0.0.1:0\noutputs:\n  - type: null\n", dir, httpListen)
}

// TestRunTakesTheConfigEveryWay: `maruta run FILE` (flags before or after),
// `maruta -c FILE` (Fluent Bit's habit) and `maruta run -config FILE` run
// FILE, not the embedded default: each serves HTTP where FILE says.
func TestRunTakesTheConfigEveryWay(t *testing.T) {
	for _, args := range [][]string{
		{"run", "FILE"},
		{"run", "FILE", "-log-level", "debug"},
		{"run", "-log-level", "debug", "FILE"},
		{"-c", "FILE"},
		{"--config", "FILE"},
		{"run", "-config", "FILE"},
	} {
		dir := t.TempDir()
		httpAddr := freeTCPPort(t)
		cfg := writeFile(t, dir, "m.yaml", minimalConfig(dir, httpAddr))
		for i, a := range args {
			if a == "FILE" {
				args[i] = cfg
			}
		}
		cmd := exec.Command(marutaBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MARUTA_LISTEN=127.0.0.1:0", "MARUTA_HTTP_LISTEN=127.0.0.1:0")
		if !testutil.StartHealthy(t, cmd, httpAddr).Stop() {
			t.Fatalf("maruta %s did not stop on SIGINT", strings.Join(args, " "))
		}
		if _, err := os.Stat(filepath.Join(dir, "maruta-data")); err == nil {
			t.Errorf("maruta %s wrote ./maruta-data: it ran the embedded default", strings.Join(args, " "))
		}
	}
}

// TestDryRun: fluentd's --dry-run (and Fluent Bit's -D) checks the config
// as run would load it, unset variables included, and exits without
// starting anything; validate reports an unset variable as a warning.
func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	// A port that is taken: a dry run must not try to bind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	good := writeFile(t, dir, "good.yaml", minimalConfig(dir, ln.Addr().String()))
	for _, args := range [][]string{{"--dry-run", "-c", good}, {"-c", good, "--dry-run"}, {"run", "-D", good}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || out != good+": ok (1 sources, 0 pipeline steps, 1 outputs)\n" || errs != "" {
			t.Errorf("maruta %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("a dry run created data_dir")
	}
	unset := writeFile(t, dir, "unset.yaml", strings.Replace(minimalConfig(dir, "off"), "  - type: null\n",
		"  - type: s3\n    bucket: ${MARUTA_TEST_SURELY_UNSET}\n", 1))
	want := unset + ":9: outputs[0].bucket: environment variable MARUTA_TEST_SURELY_UNSET is not set (write ${MARUTA_TEST_SURELY_UNSET:-default} for a default)\n"
	if code, out, errs := runCLI(t, "--dry-run", "-c", unset); code != 1 || out != "" || errs != want {
		t.Errorf("dry run with an unset variable: exit %d, stdout %q, stderr %q, want exit 1 and %q", code, out, errs, want)
	}
	if code, out, errs := runCLI(t, "validate", unset); code != 0 || !strings.Contains(out, ": ok (") || errs != "warning: "+want {
		t.Errorf("validate with an unset variable: exit %d, stdout %q, stderr %q, want exit 0 and a warning %q", code, out, errs, want)
	}
}

// TestValidateReportsEveryError: a file with one mistake of each kind (the
// decoder's, validation's, a component's) gets every one in one run, sorted
// by line.
func TestValidateReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "bad.yaml", `nodes: x
sources:
  - type: forward
    listen: "24224"
    max_depth: many
pipeline:
  - type: grep
    match: 'docker.{a'
    regexp:
      - {key: log, pattern: 'a(?=b)'}
      - {key: log, pattern: 'ok'}
    exclude:
      - {key: msg, pattern: '(?<!x)y'}
  - type: rewrite_tag
    rules:
      - {key: a, pattern: b}
  - type: parse
    key: log
    format: json
    bogus: 1
outputs:
  - type: s3
    bucket: ${MARUTA_TEST_SURELY_UNSET}
    buffer: {fsync: sometimes, flush_interval: soon}
  - type: kafka
`)
	code, out, errs := runCLI(t, "validate", f)
	want := []string{
		f + `:1: nodes: unknown key "nodes"`,
		f + `:4: sources[0].listen: "24224" is not host:port`,
		f + `:5: sources[0].max_depth: a string where a whole number is expected`,
		f + `:8: pipeline[0].match: `,
		f + `:10: pipeline[0].regexp[0].pattern: `,
		f + `:13: pipeline[0].exclude[0].pattern: `,
		f + `:16: pipeline[1].rules[0].tag: must be set`,
		f + `:20: pipeline[2].bogus: unknown key "bogus"`,
		f + `:24: outputs[0].buffer.flush_interval: invalid duration "soon"`,
		f + `:24: outputs[0].buffer.fsync: "sometimes" is not one of always, interval, off`,
		f + `:25: outputs[1].type: unknown output type "kafka"`,
	}
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	var warn []string
	for len(lines) > 0 && strings.HasPrefix(lines[0], "warning: ") {
		warn, lines = append(warn, lines[0]), lines[1:]
	}
	ok := code == 1 && out == "" && len(lines) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(lines[i], want[i])
	}
	if !ok {
		t.Errorf("validate: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and lines starting:\n%s", code, out, errs, strings.Join(want, "\n"))
	}
	if len(warn) != 1 || !strings.Contains(warn[0], f+":23: outputs[0].bucket: environment variable MARUTA_TEST_SURELY_UNSET is not set") {
		t.Errorf("validate: warnings %q, want the unset variable", warn)
	}
}

// TestFluentConfUnsetVariable: an unset variable in a fluent.conf is the
// user's mistake, at the fluent.conf's line — not a converter bug.
func TestFluentConfUnsetVariable(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "fluent.conf", `<source>
  @type forward
  port 24224
  <security>
    self_hostname agg
    shared_key "#{ENV['MARUTA_TEST_UNSET_KEY']}"
  </security>
</source>
<match **>
  @type s3
  s3_bucket "#{ENV['MARUTA_TEST_UNSET_BUCKET']}"
  s3_region us-east-1
  path logs/
</match>
`)
	key := f + `:6: shared_key: environment variable MARUTA_TEST_UNSET_KEY is not set`
	bucket := f + `:11: s3_bucket: environment variable MARUTA_TEST_UNSET_BUCKET is not set`
	code, _, errs := runCLI(t, "run", "--dry-run", f)
	if code != 1 || !strings.HasPrefix(errs, key) || !strings.Contains(errs, "\n"+bucket) || strings.Contains(errs, "converted") {
		t.Errorf("run --dry-run: exit %d, stderr:\n%s\nwant exit 1 and the two variables at the fluent.conf's lines", code, errs)
	}
	code, out, errs := runCLI(t, "validate", f)
	if code != 0 || !strings.Contains(out, ": ok (") || !strings.HasPrefix(errs, "warning: "+key) || !strings.Contains(errs, "warning: "+bucket) {
		t.Errorf("validate: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	// athena ddl reads the outputs: the source's key is not its business,
	// the bucket (the table's LOCATION) is.
	code, _, errs = runCLI(t, "athena", "ddl", "-c", f)
	if code != 1 || !strings.HasPrefix(errs, bucket) || strings.Contains(errs, "MARUTA_TEST_UNSET_KEY") {
		t.Errorf("athena ddl: exit %d, stderr:\n%s\nwant the bucket only", code, errs)
	}
}

// TestAthenaDDLNeedsOnlyItsKeys: the aggregator example's DDL needs its
// bucket, not the shared key, the region or the TLS files.
func TestAthenaDDLNeedsOnlyItsKeys(t *testing.T) {
	cmd := exec.Command(marutaBin, "athena", "ddl", "-c", "../../examples/aggregator.yaml")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = []string{"MARUTA_S3_BUCKET=my-logs", "PATH=" + os.Getenv("PATH")}
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "CREATE EXTERNAL TABLE IF NOT EXISTS `logs`.`shop_events`") ||
		!strings.Contains(out.String(), "LOCATION 's3://my-logs/shop-event/'") {
		t.Fatalf("athena ddl: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "-- event_type is an injected partition: every query must name it") {
		t.Errorf("the DDL does not say that queries must filter on the injected partition:\n%s", out.String())
	}
}
