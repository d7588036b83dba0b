#!/usr/bin/env bash
# Runs SQL on a local maruta lake with the DuckDB version the tests pin —
# nothing to install by hand but node and npm. The first run installs
# DuckDB under .cache/duckdb (under a minute).
#
#   scripts/query.sh "SELECT level, count(*) AS n FROM lake GROUP BY level"
#
# `lake` is a view of every Parquet file under $MARUTA_LAKE (default
# ./maruta-data/lake, the embedded default's lake), with its partition
# columns tag, dt and hour; columns a file lacks are NULL there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lake=${MARUTA_LAKE:-./maruta-data/lake}
if [ $# -ne 1 ]; then
  echo "usage: scripts/query.sh \"SQL\"   (the view lake holds $lake/**/*.parquet; MARUTA_LAKE=DIR for another lake)" >&2
  exit 2
fi
if [ -z "${MARUTA_DUCKDB_DIR:-}" ]; then
  MARUTA_DUCKDB_DIR=$("$here/install-test-tools.sh" duckdb | sed -n 's/^MARUTA_DUCKDB_DIR=//p')
fi
export MARUTA_DUCKDB_DIR MARUTA_LAKE=$lake
exec node --input-type=module -e '
import { createRequire } from "node:module";
const require = createRequire(process.env.MARUTA_DUCKDB_DIR + "/");
const { DuckDBInstance } = require("@duckdb/node-api");
const lake = process.env.MARUTA_LAKE.replace(/\/+$/, "").replaceAll("'"'"'", "'"''"'");
const conn = await (await DuckDBInstance.create(":memory:")).connect();
try {
  await conn.run(`CREATE VIEW lake AS SELECT * FROM read_parquet('"'"'${lake}/**/*.parquet'"'"', hive_partitioning = true, union_by_name = true)`);
  const r = await conn.runAndReadAll(process.argv[1]);
  const cols = r.columnNames();
  const rows = r.getRowsJson().map((row) => row.map((v) => v === null ? "NULL" : typeof v === "string" ? v : JSON.stringify(v)));
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  console.log(line(cols));
  console.log(line(w.map((n) => "-".repeat(n))));
  for (const row of rows) console.log(line(row));
  console.log(`(${rows.length} row${rows.length === 1 ? "" : "s"})`);
} catch (e) {
  console.error(String(e && e.message || e));
  process.exit(1);
}
' "$1"
