// Package schema is the table schema of a Parquet output: its columns and
// their types (Athena's names), how record keys become column names, and
// the Store that infers, persists and appends columns in auto mode
// (<data_dir>/schema/<output>.json). The Parquet encoder writes files with
// it; athena generates DDL from it (Load reads without changing anything).
//
// A Store is safe for concurrent use.
//
// Imports: internal/… only (config, fsutil).
package schema
