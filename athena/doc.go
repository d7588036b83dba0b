// Package athena turns maruta's Parquet outputs into Athena tables: the
// CREATE EXTERNAL TABLE statement with partition projection derived from
// the output's path template, and ALTER TABLE … ADD COLUMNS for the columns
// auto mode added to the table since a schema version.
//
// Columns come from the output's declared schema or from the schema the
// sink persisted under <data_dir>/schema/ (see schema.Load); partition
// columns from the path template (see layout.Parse). Building the DDL is
// read-only and needs no AWS access; the calls to the Athena API that
// `maruta athena apply` makes (Statements, Apply, NewAPI) are kept apart
// from it, in apply.go.
//
// Imports: of the module, internal/… and the two parts of sinks it needs,
// sinks/schema and sinks/layout; never sinks itself (the transports),
// buffer, router or forward. Of the large libraries, the AWS SDK (the
// Athena API) and parquet-go (reading the footers of sample files).
// See ARCHITECTURE.md.
package athena
