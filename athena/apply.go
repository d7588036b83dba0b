package athena

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awsathena "github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/athena/types"

	"github.com/marutalog/maruta/internal/config"
)

// API is the part of the Athena client Apply uses (`maruta athena apply`).
type API interface {
	StartQueryExecution(ctx context.Context, in *awsathena.StartQueryExecutionInput, optFns ...func(*awsathena.Options)) (*awsathena.StartQueryExecutionOutput, error)
	GetQueryExecution(ctx context.Context, in *awsathena.GetQueryExecutionInput, optFns ...func(*awsathena.Options)) (*awsathena.GetQueryExecutionOutput, error)
}

// Statement is one SQL statement Apply runs, with where to run it.
type Statement struct {
	Output         string
	SQL            string
	Workgroup      string
	OutputLocation string
	// Region is athena.region, else the s3 output's region; "" leaves it
	// to the AWS configuration (AWS_REGION, the profile).
	Region string
}

// Statements returns what Apply runs for the tables of cfg: for each table,
// CREATE DATABASE IF NOT EXISTS, CREATE EXTERNAL TABLE IF NOT EXISTS and,
// with opts.Alter, ALTER TABLE … ADD COLUMNS when columns were added after
// opts.Since. Tables whose athena block names neither a workgroup nor an
// output_location are left out, and their outputs returned in skipped:
// Athena needs one of them (a work group with a result location of its
// own, or a result location).
func Statements(cfg *config.Config, opts DDLOptions) (out []Statement, skipped []string, err error) {
	tables, err := Tables(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range tables {
		a, region := athenaOf(cfg, t.Output)
		if a == nil || a.Workgroup == "" && a.OutputLocation == "" {
			skipped = append(skipped, t.Output)
			continue
		}
		if a.Region != "" {
			region = a.Region
		}
		st := func(sql string) Statement {
			return Statement{Output: t.Output, SQL: sql, Workgroup: a.Workgroup, OutputLocation: a.OutputLocation, Region: region}
		}
		out = append(out, st("CREATE DATABASE IF NOT EXISTS "+Quote(t.Database)), st(forAPI(t.CreateStatement())))
		if opts.Alter {
			for _, c := range t.Columns {
				if c.Version > opts.Since {
					out = append(out, st(forAPI(t.AlterStatement(opts.Since))))
					break
				}
			}
		}
	}
	return out, skipped, nil
}

// forAPI strips comment lines and the final ';': the API takes one bare
// statement.
func forAPI(sql string) string {
	var lines []string
	for _, l := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(l, "--") {
			lines = append(lines, l)
		}
	}
	return strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";")
}

// athenaOf returns the athena block of an output and, for s3, its region.
func athenaOf(cfg *config.Config, output string) (*config.Athena, string) {
	for _, o := range cfg.LeafOutputs() {
		if o.Name != output {
			continue
		}
		if enc := o.Encoding(); enc != nil {
			region := ""
			if o.S3 != nil {
				region = o.S3.Region
			}
			return enc.Athena, region
		}
	}
	return nil, ""
}

// Apply runs statements one after the other through the Athena API and
// waits for each to finish: it asks for the query's state after 50 ms, then
// twice as long each time up to poll (default 1 s; a DDL statement takes
// Athena about a second). It stops at the first statement that fails.
func Apply(ctx context.Context, api API, statements []Statement, poll time.Duration) error {
	if poll <= 0 {
		poll = time.Second
	}
	for _, s := range statements {
		wait := min(50*time.Millisecond, poll)
		in := &awsathena.StartQueryExecutionInput{QueryString: aws.String(s.SQL)}
		if s.Workgroup != "" {
			in.WorkGroup = aws.String(s.Workgroup)
		}
		if s.OutputLocation != "" {
			in.ResultConfiguration = &types.ResultConfiguration{OutputLocation: aws.String(s.OutputLocation)}
		}
		started, err := api.StartQueryExecution(ctx, in)
		if err != nil {
			return fmt.Errorf("athena: output %s: start query: %w", s.Output, err)
		}
		id := aws.ToString(started.QueryExecutionId)
		for {
			got, err := api.GetQueryExecution(ctx, &awsathena.GetQueryExecutionInput{QueryExecutionId: aws.String(id)})
			if err != nil {
				return fmt.Errorf("athena: output %s: query %s: %w", s.Output, id, err)
			}
			st := got.QueryExecution.Status
			if st != nil && st.State == types.QueryExecutionStateSucceeded {
				break
			}
			if st != nil && (st.State == types.QueryExecutionStateFailed || st.State == types.QueryExecutionStateCancelled) {
				return fmt.Errorf("athena: output %s: query %s %s: %s", s.Output, id, st.State, aws.ToString(st.StateChangeReason))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, poll)
		}
	}
	return nil
}

// NewAPI returns an Athena client from the default AWS configuration
// (credential chain, AWS_REGION, AWS_ENDPOINT_URL_ATHENA) with region, when
// set, taking precedence.
func NewAPI(ctx context.Context, region string) (API, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("athena: load AWS config: %w", err)
	}
	return awsathena.NewFromConfig(cfg), nil
}
