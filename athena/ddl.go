package athena

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/sinks/layout"
	"github.com/marutalog/maruta/sinks/schema"
)

// DefaultDatabase is the database of tables whose output names none.
const DefaultDatabase = "default"

// ConfigKeys are the config keys Tables reads, as config.KeyPattern paths:
// a command that prints DDL needs no other key to be valid, or its
// variables set (a source's shared key, an output's credentials).
var ConfigKeys = []string{"data_dir", "outputs.type", "outputs.name", "outputs.format",
	"outputs.path", "outputs.bucket", "outputs.schema", "outputs.athena"}

// DDLOptions select what DDL prints.
type DDLOptions struct {
	// Outputs limits the DDL to the outputs with these names; empty means
	// every Parquet output (file and s3, copy stores included).
	Outputs []string
	// Alter adds ALTER TABLE … ADD COLUMNS for the columns added after
	// schema version Since (run it on a table created at that version).
	Alter bool
	Since int
	// DataDir, when set, is where persisted schemas are read instead of the
	// config's data_dir.
	DataDir string
	// Sample, when set, is a folder of Parquet files of the table (a copy
	// of the lake, or of an S3 prefix): the columns in their footers that
	// the schema lacks are added (SampleColumns). It needs exactly one
	// Parquet output (see Outputs).
	Sample string
}

// Table is an Athena table of one Parquet output.
type Table struct {
	Output   string
	Type     string // s3 or file
	Database string
	Name     string
	// Schema is the output's table schema (data columns without time and
	// overflow).
	Schema schema.TableSchema
	// Columns are all data columns as Athena sees them: time, the schema's
	// columns, the overflow column.
	Columns    []Column
	Partitions []layout.Partition
	// Location is the table LOCATION, ending with '/'.
	Location string
	// Notes are printed as comments before the statement.
	Notes []string
	// Properties are the TBLPROPERTIES, in order.
	Properties [][2]string
}

// Column is a table column with its Athena type.
type Column struct {
	Name    string
	Type    string
	Version int // schema version that added it; 0 for time and overflow
}

// Tables returns the tables of the config's Parquet outputs, in config
// order.
func Tables(cfg *config.Config, opts DDLOptions) ([]Table, error) {
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = cfg.DataDir
	}
	var sampled []schema.Column
	var conflicts []string
	if opts.Sample != "" {
		var err error
		if sampled, conflicts, err = SampleColumns(opts.Sample); err != nil {
			return nil, fmt.Errorf("athena: %w", err)
		}
	}
	var tables []Table
	seen := map[string]string{}
	for _, out := range cfg.LeafOutputs() {
		if len(opts.Outputs) > 0 && !slices.Contains(opts.Outputs, out.Name) {
			continue
		}
		enc, path, location := out.Encoding(), out.ChunkPath(), "file://"
		if enc == nil || enc.Format != config.FormatParquet {
			continue
		}
		if out.S3 != nil {
			location = "s3://" + out.S3.Bucket + "/"
		}
		t, err := table(out, enc, path, location, dataDir, sampled)
		if err != nil {
			return nil, fmt.Errorf("athena: output %s: %w", out.Name, err)
		}
		full := t.Database + "." + t.Name
		if prev, dup := seen[full]; dup {
			return nil, fmt.Errorf("athena: outputs %s and %s both define table %s: name one under athena.table", prev, out.Name, full)
		}
		seen[full] = out.Name
		for _, c := range conflicts {
			t.Notes = append(t.Notes, "sample: "+c+" (the first type is kept)")
		}
		tables = append(tables, t)
	}
	if opts.Sample != "" && len(tables) > 1 {
		return nil, fmt.Errorf("athena: a sample is of one table, and the config has %d Parquet outputs: name one with -output", len(tables))
	}
	for _, name := range opts.Outputs {
		found := false
		for _, t := range tables {
			found = found || t.Output == name
		}
		if !found {
			return nil, fmt.Errorf("athena: no Parquet output named %q", name)
		}
	}
	return tables, nil
}

func table(out *config.Output, enc *config.Encoding, path, location, dataDir string, sampled []schema.Column) (Table, error) {
	t := Table{Output: out.Name, Type: out.Type, Database: DefaultDatabase, Name: TableName(out.Name)}
	a := enc.Athena
	if a != nil {
		if a.Database != "" {
			t.Database = a.Database
		}
		if a.Table != "" {
			t.Name = a.Table
		}
	}
	s, err := schema.Load(dataDir, out)
	if err != nil {
		return t, err
	}
	s = addSampled(s, sampled)
	t.Schema = s
	pl, err := layout.Parse(path, a)
	if err != nil {
		return t, err
	}
	t.Partitions = pl.Partitions
	if out.File != nil {
		abs, err := filepath.Abs(filepath.FromSlash(pl.Prefix))
		if err != nil {
			return t, err
		}
		location += filepath.ToSlash(abs) + "/"
	} else {
		location += pl.Prefix
	}
	if a != nil && a.Location != "" {
		location = strings.TrimSuffix(a.Location, "/") + "/"
	}
	t.Location = location

	t.Columns = append(t.Columns, Column{Name: schema.TimeColumn, Type: schema.TypeTimestamp})
	for _, c := range s.Columns {
		t.Columns = append(t.Columns, Column{Name: c.Name, Type: schema.AthenaType(c.Type), Version: c.Version})
	}
	t.Columns = append(t.Columns, Column{Name: s.Overflow, Type: schema.TypeMap})
	for _, p := range pl.Partitions {
		for _, c := range t.Columns {
			if strings.EqualFold(c.Name, p.Name) {
				return t, fmt.Errorf("partition column %q (from %s in the path) is also a data column: rename it under athena.partitions", p.Name, p.Source)
			}
		}
	}

	if len(pl.Partitions) > 0 {
		t.Properties = append(t.Properties, [2]string{"projection.enabled", "true"})
		for _, p := range pl.Partitions {
			for _, kv := range p.Projection {
				t.Properties = append(t.Properties, [2]string{"projection." + p.Name + "." + kv[0], kv[1]})
			}
		}
		if !pl.Hive {
			t.Properties = append(t.Properties, [2]string{"storage.location.template", location + pl.Template})
		}
	}
	return t, nil
}

// addSampled appends the sampled columns s lacks (Athena column names
// ignore case), as one new schema version.
func addSampled(s schema.TableSchema, sampled []schema.Column) schema.TableSchema {
	have := map[string]bool{strings.ToLower(s.Overflow): true}
	for _, c := range s.Columns {
		have[strings.ToLower(c.Name)] = true
	}
	added := false
	for _, c := range sampled {
		if have[strings.ToLower(c.Name)] {
			continue
		}
		have[strings.ToLower(c.Name)] = true
		c.Version = s.Version + 1
		s.Columns = append(s.Columns, c)
		added = true
	}
	if added {
		s.Version++
	}
	return s
}

// TableName turns an output name into a table name: lower case, '-' as '_'.
func TableName(output string) string {
	return strings.ReplaceAll(strings.ToLower(output), "-", "_")
}

// DDL returns CREATE EXTERNAL TABLE IF NOT EXISTS for every Parquet output
// of cfg (and, with opts.Alter, ALTER TABLE … ADD COLUMNS for the columns
// added after schema version opts.Since), as one SQL text with a comment
// before each statement.
func DDL(cfg *config.Config, opts DDLOptions) (string, error) {
	tables, err := Tables(cfg, opts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if len(tables) == 0 {
		b.WriteString("-- no Parquet outputs: nothing for Athena\n")
	}
	for i, t := range tables {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(t.CreateStatement())
		if opts.Alter {
			b.WriteString("\n")
			b.WriteString(t.AlterStatement(opts.Since))
		}
	}
	return b.String(), nil
}

// CreateStatement renders the table's CREATE EXTERNAL TABLE IF NOT EXISTS.
func (t Table) CreateStatement() string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- output %s (%s): schema %s, version %d\n", t.Output, t.Type, t.Schema.Mode, t.Schema.Version)
	if t.Type == "file" {
		b.WriteString("-- a local lake: Athena needs the files in S3; set athena.location to where they are copied\n")
	}
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "-- %s\n", n)
	}
	for _, p := range t.Partitions {
		if slices.Contains(p.Projection, [2]string{"type", "injected"}) {
			fmt.Fprintf(&b, "-- %[1]s is an injected partition: every query must name it, WHERE %[1]s = '...' (or IN ('...', ...));\n", p.Name)
			fmt.Fprintf(&b, "-- without that Athena fails with CONSTRAINT_VIOLATION: For the injected projected partition column %s, ...\n", p.Name)
		}
	}
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s.%s (\n", Quote(t.Database), Quote(t.Name))
	for i, c := range t.Columns {
		sep := ","
		if i == len(t.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s %s%s\n", Quote(c.Name), c.Type, sep)
	}
	b.WriteString(")\n")
	if len(t.Partitions) > 0 {
		b.WriteString("PARTITIONED BY (\n")
		for i, p := range t.Partitions {
			sep := ","
			if i == len(t.Partitions)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "  %s %s%s\n", Quote(p.Name), p.Type, sep)
		}
		b.WriteString(")\n")
	}
	b.WriteString("STORED AS PARQUET\n")
	fmt.Fprintf(&b, "LOCATION %s", literal(t.Location))
	if len(t.Properties) > 0 {
		b.WriteString("\nTBLPROPERTIES (\n")
		for i, kv := range t.Properties {
			sep := ","
			if i == len(t.Properties)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "  %s = %s%s\n", literal(kv[0]), literal(kv[1]), sep)
		}
		b.WriteString(")")
	}
	b.WriteString(";\n")
	return b.String()
}

// AlterStatement renders ALTER TABLE … ADD COLUMNS for the columns added
// after schema version since, or a comment when there are none.
func (t Table) AlterStatement(since int) string {
	var add []Column
	for _, c := range t.Columns {
		if c.Version > since {
			add = append(add, c)
		}
	}
	if len(add) == 0 {
		return fmt.Sprintf("-- %s.%s: no columns added after schema version %d\n", t.Database, t.Name, since)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- %s.%s: columns added after schema version %d (now %d)\n", t.Database, t.Name, since, t.Schema.Version)
	fmt.Fprintf(&b, "ALTER TABLE %s.%s ADD COLUMNS (\n", Quote(t.Database), Quote(t.Name))
	for i, c := range add {
		sep := ","
		if i == len(add)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s %s%s\n", Quote(c.Name), c.Type, sep)
	}
	b.WriteString(");\n")
	return b.String()
}

// Quote backticks an identifier for Athena DDL (reserved words such as
// time, date or user are then fine).
func Quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// literal quotes a string for Athena DDL.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "\\'") + "'"
}
