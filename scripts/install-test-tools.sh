#!/usr/bin/env bash
# Installs the real servers and readers the tests use, pinned, into a cache
# folder (default .cache/ in the repository). Idempotent: a second run only
# checks. Prints the environment the tests read.
set -euo pipefail
cache=${MARUTA_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/.cache}
mkdir -p "$cache/bin" "$cache/duckdb"

VERSITYGW_VERSION=v1.8.0
DUCKDB_NODE_API_VERSION=1.5.6-r.1

if [ ! -x "$cache/bin/versitygw" ] || [ "$(cat "$cache/bin/.versitygw-version" 2>/dev/null)" != "$VERSITYGW_VERSION" ]; then
  echo "installing versitygw $VERSITYGW_VERSION (S3 server for tests)" >&2
  GOBIN="$cache/bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
  echo "$VERSITYGW_VERSION" > "$cache/bin/.versitygw-version"
fi

if [ ! -d "$cache/duckdb/node_modules/@duckdb/node-api" ] || [ "$(cat "$cache/duckdb/.version" 2>/dev/null)" != "$DUCKDB_NODE_API_VERSION" ]; then
  echo "installing @duckdb/node-api $DUCKDB_NODE_API_VERSION (Parquet reader for tests)" >&2
  command -v node >/dev/null || { echo "node is required for the DuckDB reader (apt-get install nodejs npm)" >&2; exit 1; }
  (cd "$cache/duckdb" && printf '{"name":"maruta-test-duckdb","private":true}\n' > package.json &&
    npm install --no-audit --no-fund --loglevel=error "@duckdb/node-api@$DUCKDB_NODE_API_VERSION" >&2)
  echo "$DUCKDB_NODE_API_VERSION" > "$cache/duckdb/.version"
fi

echo "MARUTA_VERSITYGW=$cache/bin/versitygw"
echo "MARUTA_DUCKDB_DIR=$cache/duckdb"
