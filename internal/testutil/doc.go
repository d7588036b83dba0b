// Package testutil runs the real things tests need: an S3 server
// (versitygw) on loopback and a Parquet reader and SQL engine (DuckDB through
// node and @duckdb/node-api). `make tools` installs both and the Makefile
// exports their locations (MARUTA_VERSITYGW, MARUTA_DUCKDB_DIR).
//
// When a tool is missing the test is skipped, unless MARUTA_REQUIRE_TOOLS=1
// (set by `make test`), which makes it fail instead.
//
// It also runs what the other tests need: a Docker daemon of the test's
// own, rsyslog, in-process CloudWatch Logs and Treasure Data servers that
// speak their real protocols and enforce their limits, proxies that fail
// requests or lose replies, TLS certificates, a maruta process waited for
// until healthy.
//
// Test code: imported by tests only, never by the binary. Imports:
// internal/…; the AWS SDK for its S3 client.
package testutil
