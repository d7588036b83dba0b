package athena

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsathena "github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/athena/types"

	"github.com/marutalog/maruta/internal/config"
)

// recorder stands in for Athena (which cannot run here): it records the
// queries and answers with a scripted state sequence per query.
type recorder struct {
	inputs []*awsathena.StartQueryExecutionInput
	states map[string][]types.QueryExecutionState
	fail   string // a query containing this fails
}

func (r *recorder) StartQueryExecution(_ context.Context, in *awsathena.StartQueryExecutionInput, _ ...func(*awsathena.Options)) (*awsathena.StartQueryExecutionOutput, error) {
	r.inputs = append(r.inputs, in)
	id := string(rune('a' + len(r.inputs) - 1))
	st := []types.QueryExecutionState{types.QueryExecutionStateQueued, types.QueryExecutionStateRunning, types.QueryExecutionStateSucceeded}
	if r.fail != "" && strings.Contains(aws.ToString(in.QueryString), r.fail) {
		st = []types.QueryExecutionState{types.QueryExecutionStateRunning, types.QueryExecutionStateFailed}
	}
	r.states[id] = st
	return &awsathena.StartQueryExecutionOutput{QueryExecutionId: aws.String(id)}, nil
}

func (r *recorder) GetQueryExecution(_ context.Context, in *awsathena.GetQueryExecutionInput, _ ...func(*awsathena.Options)) (*awsathena.GetQueryExecutionOutput, error) {
	id := aws.ToString(in.QueryExecutionId)
	st := r.states[id]
	if len(st) == 0 {
		return nil, errors.New("unknown query " + id)
	}
	r.states[id] = st[1:]
	return &awsathena.GetQueryExecutionOutput{QueryExecution: &types.QueryExecution{Status: &types.QueryExecutionStatus{State: st[0], StateChangeReason: aws.String("boom")}}}, nil
}

func TestApply(t *testing.T) {
	cfg, err := config.Parse("a.yaml", []byte(`sources: [{type: forward}]
outputs:
  - type: s3
    name: with-api
    bucket: b
    region: eu-west-1
    athena: {database: logs, workgroup: primary, output_location: "s3://results/"}
  - type: s3
    name: ddl-only
    bucket: b
    region: eu-west-1
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	sts, err := Statements(cfg, DDLOptions{DataDir: t.TempDir(), Alter: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 {
		t.Fatalf("statements %v", sts)
	}
	if sts[0].SQL != "CREATE DATABASE IF NOT EXISTS `logs`" || !strings.HasPrefix(sts[1].SQL, "CREATE EXTERNAL TABLE IF NOT EXISTS `logs`.`with_api`") ||
		strings.HasSuffix(sts[1].SQL, ";") || strings.Contains(sts[1].SQL, "--") {
		t.Errorf("statements %q", sts)
	}
	r := &recorder{states: map[string][]types.QueryExecutionState{}}
	if err := Apply(context.Background(), r, sts, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if len(r.inputs) != 2 || aws.ToString(r.inputs[1].WorkGroup) != "primary" || aws.ToString(r.inputs[1].ResultConfiguration.OutputLocation) != "s3://results/" {
		t.Errorf("inputs %+v", r.inputs)
	}
	r = &recorder{states: map[string][]types.QueryExecutionState{}, fail: "EXTERNAL"}
	if err := Apply(context.Background(), r, sts, time.Millisecond); err == nil || !strings.Contains(err.Error(), "FAILED: boom") {
		t.Errorf("failed query: %v", err)
	}
}
