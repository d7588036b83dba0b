#!/usr/bin/env bash
# Installs the real servers and readers the tests use, and the staticcheck
# and deadcode that `make test` runs, pinned, into a cache folder (default .cache/ in the
# repository). Idempotent: a second run only checks. Says on stderr what it
# does and how long it took; prints the environment the tests read on stdout.
#   install-test-tools.sh          everything the tests need
#   install-test-tools.sh duckdb   the Parquet reader alone (scripts/query.sh)
set -euo pipefail
cache=${MARUTA_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/.cache}
only=${1:-all}
mkdir -p "$cache/bin" "$cache/duckdb"
say() { echo "install-test-tools: $*" >&2; }

VERSITYGW_VERSION=v1.8.0
# staticcheck (module honnef.co/go/tools) and deadcode (golang.org/x/tools),
# which `make test` runs and which fail CI on any finding.
STATICCHECK_VERSION=v0.8.2
DEADCODE_VERSION=v0.52.0
# Debian bookworm's packages (the versions the Docker tests were written
# against; a bookworm point release may bring a newer build of the same).
DOCKER_IO_VERSION=20.10.24+dfsg1-1+deb12u1+b6
BUSYBOX_STATIC_VERSION=1:1.35.0-4+deb12u1+b1
DUCKDB_NODE_API_VERSION=1.5.6-r.1

if [ "$only" != all ]; then :
elif [ ! -x "$cache/bin/versitygw" ] || [ "$(cat "$cache/bin/.versitygw-version" 2>/dev/null)" != "$VERSITYGW_VERSION" ]; then
  say "installing versitygw $VERSITYGW_VERSION (the S3 server of the tests) into $cache/bin: go install downloads and compiles it, 2 to 4 minutes of 2 cores the first time, with no output meanwhile"
  start=$SECONDS
  GOBIN="$cache/bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
  echo "$VERSITYGW_VERSION" > "$cache/bin/.versitygw-version"
  say "versitygw installed in $((SECONDS - start)) s"
else
  say "versitygw $VERSITYGW_VERSION: already in $cache/bin"
fi

if [ "$only" != all ]; then :
elif [ ! -x "$cache/bin/staticcheck" ] || [ "$(cat "$cache/bin/.staticcheck-version" 2>/dev/null)" != "$STATICCHECK_VERSION" ]; then
  say "installing staticcheck $STATICCHECK_VERSION into $cache/bin: go install compiles it, about a minute of 2 cores the first time"
  start=$SECONDS
  GOBIN="$cache/bin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" >&2
  echo "$STATICCHECK_VERSION" > "$cache/bin/.staticcheck-version"
  say "staticcheck installed in $((SECONDS - start)) s"
else
  say "staticcheck $STATICCHECK_VERSION: already in $cache/bin"
fi
if [ "$only" != all ]; then :
elif [ ! -x "$cache/bin/deadcode" ] || [ "$(cat "$cache/bin/.deadcode-version" 2>/dev/null)" != "$DEADCODE_VERSION" ]; then
  say "installing deadcode $DEADCODE_VERSION into $cache/bin"
  start=$SECONDS
  GOBIN="$cache/bin" go install "golang.org/x/tools/cmd/deadcode@$DEADCODE_VERSION" >&2
  echo "$DEADCODE_VERSION" > "$cache/bin/.deadcode-version"
  say "deadcode installed in $((SECONDS - start)) s"
else
  say "deadcode $DEADCODE_VERSION: already in $cache/bin"
fi

if [ ! -d "$cache/duckdb/node_modules/@duckdb/node-api" ] || [ "$(cat "$cache/duckdb/.version" 2>/dev/null)" != "$DUCKDB_NODE_API_VERSION" ]; then
  say "installing DuckDB (@duckdb/node-api $DUCKDB_NODE_API_VERSION, the Parquet reader of the tests) into $cache/duckdb with npm: about 40 MB, under a minute"
  command -v node >/dev/null || { echo "node is required for the DuckDB reader (apt-get install nodejs npm)" >&2; exit 1; }
  start=$SECONDS
  (cd "$cache/duckdb" && printf '{"name":"maruta-test-duckdb","private":true}\n' > package.json &&
    npm install --no-audit --no-fund --loglevel=error "@duckdb/node-api@$DUCKDB_NODE_API_VERSION" >&2)
  echo "$DUCKDB_NODE_API_VERSION" > "$cache/duckdb/.version"
  say "DuckDB installed in $((SECONDS - start)) s"
else
  say "DuckDB $DUCKDB_NODE_API_VERSION: already in $cache/duckdb"
fi
[ "$only" = all ] || { echo "MARUTA_DUCKDB_DIR=$cache/duckdb"; exit 0; }

# FUSE for the power-loss tests (internal/crashfs): as root they mount with
# mount(2) and need only /dev/fuse; without root they need the setuid
# fusermount3 helper (Debian package fuse3), which root cannot install for
# them here.
if [ ! -c /dev/fuse ]; then
  echo "warning: /dev/fuse is missing: the power-loss tests cannot mount (modprobe fuse, or run the container with --device /dev/fuse --cap-add SYS_ADMIN)" >&2
elif [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null && ! command -v fusermount >/dev/null; then
  echo "warning: not root and no fusermount3: the power-loss tests cannot mount (apt-get install fuse3)" >&2
fi

# Debian packages of the real servers some tests start themselves, installed
# together (one apt-get update) when any is missing:
# - the Docker daemon and the static busybox the Docker tests run (one daemon
#   per test binary, started by internal/testutil/docker.go);
# - rsyslogd with its TLS driver, for the syslog output's tests (started by
#   internal/testutil/rsyslog.go on free ports with its own config).
missing=()
command -v dockerd >/dev/null && command -v docker >/dev/null || missing+=(docker.io)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing+=(rsyslog-gnutls)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "the Docker and syslog tests need ${missing[*]} (Debian packages): install them" >&2; exit 1; }
  echo "installing ${missing[*]} with apt-get (Docker daemon, busybox, syslog server for the tests; a minute or two)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
for pkg in docker.io:$DOCKER_IO_VERSION busybox-static:$BUSYBOX_STATIC_VERSION; do
  have=$(dpkg-query -W -f='${Version}' "${pkg%%:*}" 2>/dev/null || true)
  [ -z "$have" ] || [ "$have" = "${pkg#*:}" ] ||
    echo "note: ${pkg%%:*} $have installed; the Docker tests were written against ${pkg#*:}" >&2
done

echo "MARUTA_VERSITYGW=$cache/bin/versitygw"
echo "MARUTA_DUCKDB_DIR=$cache/duckdb"
