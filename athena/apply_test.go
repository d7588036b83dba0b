package athena

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/testutil"
)

// TestApply runs the statements of a config through the SDK's Athena
// client against an in-process endpoint that speaks Athena's protocol and
// checks the signature, and reads back the tables it made.
func TestApply(t *testing.T) {
	srv := testutil.StartAthena(t, "analytics", "s3://wg-results/")
	srv.SetEnv(t)
	cfg, err := config.Parse("a.yaml", []byte(`sources: [{type: forward}]
outputs:
  - type: s3
    name: with-api
    bucket: b
    region: eu-west-1
    athena: {database: logs, workgroup: primary, output_location: "s3://results/"}
  - type: s3
    name: in-workgroup
    bucket: b
    region: us-east-1
    athena: {database: logs, workgroup: analytics, region: eu-west-1}
  - type: s3
    name: ddl-only
    bucket: b
    region: eu-west-1
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	sts, skipped, err := Statements(cfg, DDLOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0] != "ddl-only" {
		t.Errorf("skipped %v, want [ddl-only]", skipped)
	}
	if len(sts) != 4 || sts[0].SQL != "CREATE DATABASE IF NOT EXISTS `logs`" || !strings.HasPrefix(sts[1].SQL, "CREATE EXTERNAL TABLE IF NOT EXISTS `logs`.`with_api`") ||
		strings.HasSuffix(sts[1].SQL, ";") || strings.Contains(sts[1].SQL, "--") || sts[3].Region != "eu-west-1" {
		t.Fatalf("statements %q", sts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api, err := NewAPI(ctx, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, api, sts, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"with_api", "in_workgroup"} {
		if cols, ok := srv.Table("logs", name); !ok || !slices.Equal(cols, []string{"time", "_overflow"}) {
			t.Errorf("table logs.%s: %v, %v", name, cols, ok)
		}
	}
	qs := srv.Queries()
	if len(qs) != 4 || qs[1].OutputLocation != "s3://results/" || qs[3].WorkGroup != "analytics" || qs[3].OutputLocation != "s3://wg-results/" {
		t.Errorf("queries %+v", qs)
	}
	// Again: every statement says IF NOT EXISTS, so nothing fails.
	if err := Apply(ctx, api, sts, 100*time.Millisecond); err != nil {
		t.Errorf("second apply: %v", err)
	}
	if v := srv.Violations(); len(v) != 0 {
		t.Errorf("requests Athena would refuse: %q", v)
	}

	// A statement Athena runs and fails: the error says which output and why.
	bad := Statement{Output: "with-api", SQL: "ALTER TABLE `logs`.`missing` ADD COLUMNS (`x` string)", Workgroup: "primary", OutputLocation: "s3://results/"}
	if err := Apply(ctx, api, []Statement{bad}, 100*time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "output with-api") || !strings.Contains(err.Error(), "FAILED: FAILED: SemanticException [Error 10001]: Table not found logs.missing") {
		t.Errorf("failed query: %v", err)
	}
	// One Athena refuses to start: no result location anywhere.
	bad = Statement{Output: "x", SQL: "CREATE DATABASE IF NOT EXISTS `logs`", Workgroup: "primary"}
	if err := Apply(ctx, api, []Statement{bad}, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "No output location provided") {
		t.Errorf("query without a result location: %v", err)
	}
	// Wrong credentials: the signature does not verify.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	api, err = NewAPI(ctx, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, api, sts[:1], 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Errorf("wrong secret: %v", err)
	}
}
