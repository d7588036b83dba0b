package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/testutil"
)

// TestAthenaApply: `maruta athena apply` creates the databases and tables
// of the config's Parquet outputs through the Athena API (an in-process
// endpoint speaking its protocol and checking the SigV4 signature), says
// what it did, leaves out the outputs without a work group or result
// location, and changes nothing when run again. Like `athena ddl` it reads
// only the outputs: an unset variable elsewhere is not its business.
func TestAthenaApply(t *testing.T) {
	srv := testutil.StartAthena(t, "analytics", "s3://wg-results/")
	srv.SetEnv(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "maruta.yaml")
	os.WriteFile(f, []byte(`data_dir: `+dir+`
sources:
  - type: forward
    security: {shared_key: "${MARUTA_TEST_UNSET_KEY}"}
outputs:
  - type: s3
    name: app-logs
    bucket: lake
    region: eu-west-1
    schema: {mode: declared, columns: [{name: level, type: string}, {name: status, type: bigint}]}
    athena: {database: logs, workgroup: analytics}
  - type: s3
    name: audit
    bucket: lake
    region: eu-west-1
    path: "audit/dt=%Y-%m-%d/"
`), 0o644)
	code, out, errs := runCLI(t, "athena", "apply", "-c", f)
	if code != 0 {
		t.Fatalf("athena apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	want := "output app-logs: CREATE DATABASE IF NOT EXISTS `logs`: done\n" +
		"output app-logs: CREATE EXTERNAL TABLE IF NOT EXISTS `logs`.`app_logs`: done\n"
	if out != want || !strings.Contains(errs, "output audit left out") {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errs)
	}
	if cols, ok := srv.Table("logs", "app_logs"); !ok || !slices.Equal(cols, []string{"time", "level", "status", "_overflow"}) {
		t.Errorf("table logs.app_logs: %v, %v", cols, ok)
	}
	if _, ok := srv.Table("default", "audit"); ok {
		t.Error("the output without work group or result location was applied")
	}
	if code, out2, errs := runCLI(t, "athena", "apply", "-c", f); code != 0 || out2 != want {
		t.Errorf("second apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out2, errs)
	}
	if v := srv.Violations(); len(v) != 0 {
		t.Errorf("requests Athena would refuse: %q", v)
	}
	// Only outputs without an API block: nothing to do is an error.
	code, _, errs = runCLI(t, "athena", "apply", "-c", f, "-output", "audit")
	if code != 1 || !strings.Contains(errs, "nothing to apply") {
		t.Errorf("-output audit: exit %d, stderr:\n%s", code, errs)
	}
	// A failure names the output and Athena's reason, exit 1.
	srv2 := testutil.StartAthena(t) // no work group "analytics"
	srv2.SetEnv(t)
	code, _, errs = runCLI(t, "athena", "apply", "-c", f)
	if code != 1 || !strings.Contains(errs, "output app-logs") || !strings.Contains(errs, "WorkGroup analytics is not found") {
		t.Errorf("unknown work group: exit %d, stderr:\n%s", code, errs)
	}
}
