package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// TestQueryTheLake: scripts/query.sh, README's one command to query the
// local lake, answers SQL on what the embedded default wrote, through the
// DuckDB the tests pin; `athena ddl -sample` finds the lake's columns where
// no schema was persisted.
func TestQueryTheLake(t *testing.T) {
	testutil.NewDuckDB(t) // skips (or fails with MARUTA_REQUIRE_TOOLS) without DuckDB
	dir := t.TempDir()
	p := startMaruta(t, dir, []string{"MARUTA_LISTEN=127.0.0.1:0", "MARUTA_HTTP_LISTEN=127.0.0.1:0"})
	f := dockerLogger(t, p.Forward, false)
	for i, line := range []string{`{"level":"info","msg":"a"}`, `{"level":"error","msg":"b"}`, `{"level":"info","msg":"c"}`, "plain text"} {
		if err := f.Post("docker.web", dockerRecord("web", "stdout", line)); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	f.Close()
	p.stop(30 * time.Second)

	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(wd, "../../scripts/query.sh"), "SELECT tag, level, count(*) AS n FROM lake GROUP BY ALL ORDER BY level NULLS LAST")
	cmd.Dir = dir // the lake is ./maruta-data/lake, as for a user who ran maruta there
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("query.sh: %v\n%s", err, out)
	}
	want := []string{
		"tag         level  n",
		"----------  -----  -",
		"docker.web  error  1",
		"docker.web  info   2",
		"docker.web  NULL   1",
		"(3 rows)",
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, "\n") {
		t.Errorf("query.sh printed:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	lake := filepath.Join(dir, "maruta-data", "lake")
	for _, args := range [][]string{{"-data-dir", t.TempDir()}, {"-data-dir", t.TempDir(), "-sample", lake}} {
		code, out, errs := runCLI(t, append([]string{"athena", "ddl"}, args...)...)
		hasLevel := strings.Contains(out, "  `level` string,\n") && strings.Contains(out, "  `container_name` string,\n")
		if code != 0 || hasLevel != (len(args) == 4) {
			t.Errorf("athena ddl %s: exit %d, level and container_name columns %v:\n%s%s", strings.Join(args, " "), code, hasLevel, out, errs)
		}
	}
}
