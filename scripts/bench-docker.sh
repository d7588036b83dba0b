#!/usr/bin/env bash
# Real-Docker measurement (BENCHMARKS.md, "Real Docker"): starts a Docker
# daemon of its own (root; vfs storage, no bridge, in a temporary folder),
# imports a busybox image without a registry, and for each receiver and
# Docker log-driver mode runs N containers × `seq 1 M` with
# --log-driver fluentd against the receiver on a free loopback port. It
# waits for the containers and the drain (until the receiver's count has
# not grown for 12 s: Docker gives up 10 s after a container's exit), then
# reports the lines stored (counted in the receiver's output, not in the
# sender) and the receiver's CPU (utime+stime from /proc/PID/stat over the
# run and the drain).
#
#   scripts/bench-docker.sh                     # maruta, modes default async request-ack
#   FLUENT_BIT_BIN=/path/fluent-bit scripts/bench-docker.sh maruta fluent-bit
#   scripts/bench-docker.sh maruta@/tmp/old/maruta maruta  # two builds, one run
#
# Receivers: maruta (embedded default: `maruta run`, Parquet lake; lines
# counted with DuckDB after a clean stop; maruta@PATH runs the build at PATH
# instead of MARUTA_BIN; for maruta the report adds the median and 99th
# percentile of the ack latency and of the fsync time from its own
# histograms), fluent-bit (the reference
# configuration: forward in, storage.type filesystem, out file; lines counted
# in the file). The script does not build Fluent Bit: name its binary in
# FLUENT_BIT_BIN.
#
# Environment: MARUTA_BIN (default: build bin/maruta), MARUTA_DUCKDB_DIR
# (default .cache/duckdb, `make tools`), BENCH_CONTAINERS (20), BENCH_LINES
# (50000 per container), BENCH_ACK_LINES (2000 per container for
# request-ack, which moves at one line per commit round per container),
# BENCH_MODES ("default async request-ack"), BENCH_TIMEOUT (600 s for the
# containers of one run), BENCH_OUT (results folder; default a temporary
# one, removed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
receivers=("$@")
[ ${#receivers[@]} -gt 0 ] || receivers=(maruta)
containers=${BENCH_CONTAINERS:-20}
lines=${BENCH_LINES:-50000}
ack_lines=${BENCH_ACK_LINES:-2000}
modes=${BENCH_MODES:-default async request-ack}
timeout_s=${BENCH_TIMEOUT:-600}
duckdb_dir=${MARUTA_DUCKDB_DIR:-$root/.cache/duckdb}
bin=${MARUTA_BIN:-}

tmp=$(mktemp -d /tmp/mbd.XXXXXX) # short: unix socket paths are limited
out=${BENCH_OUT:-$tmp/out}
mkdir -p "$out"
dockerd_pid= recv_pid=
export DOCKER_HOST=unix://$tmp/d.sock
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }
cleanup() {
  set +e
  if [ -n "$dockerd_pid" ]; then
    # Containers first, while the receiver still reads (a blocked logger
    # blocks its container); bounded either way.
    ids=$(docker ps -aq 2>/dev/null); [ -n "$ids" ] && timeout 30 docker rm -f $ids >/dev/null 2>&1
  fi
  [ -n "$recv_pid" ] && kill -9 "$recv_pid" 2>/dev/null
  if [ -n "$dockerd_pid" ]; then
    kids=$(descendants "$dockerd_pid")
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dockerd_pid" $kids 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  grep -o " $tmp[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  [ -z "${BENCH_OUT:-}" ] || cp "$tmp/dockerd.log" "$out/" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "$bin" ]; then
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/maruta" ./cmd/maruta)
  bin=$tmp/maruta
fi
for r in "${receivers[@]}"; do
  case ${r%%@*} in
    maruta) [ -d "$duckdb_dir/node_modules/@duckdb/node-api" ] || { echo "DuckDB is needed to count maruta's lines: make tools" >&2; exit 1; } ;;
    fluent-bit) [ -x "${FLUENT_BIT_BIN:-}" ] || { echo "set FLUENT_BIT_BIN to a Fluent Bit binary (see PEERS.md; this script does not build it)" >&2; exit 1; } ;;
    *) echo "unknown receiver $r (maruta, fluent-bit)" >&2; exit 1 ;;
  esac
done

# A port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

# CPU seconds (utime+stime) of a process so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

echo "starting dockerd in $tmp" >&2
dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
  --data-root "$tmp/r" --exec-root "$tmp/x" --pidfile "$tmp/d.pid" --host "$DOCKER_HOST" > "$tmp/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 600); do docker version >/dev/null 2>&1 && break; kill -0 $dockerd_pid || { cat "$tmp/dockerd.log" >&2; exit 1; }; sleep 0.1; done
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc" "$tmp/rootfs/tmp"
cp "$(command -v busybox)" "$tmp/rootfs/bin/busybox"
for a in sh seq printf head cat sleep tr; do ln -s busybox "$tmp/rootfs/bin/$a"; done
tar -C "$tmp/rootfs" -c . | docker import - maruta-bench-busybox >/dev/null
rm -rf "$tmp/rootfs"

start_receiver() { # receiver dir port
  local r=$1 dir=$2 port=$3
  rm -rf "$dir" && mkdir -p "$dir"
  case ${r%%@*} in
    maruta)
      local http b=$bin; http=127.0.0.1:$(free_port)
      [ "$r" = maruta ] || b=${r#maruta@}
      (cd "$dir" && MARUTA_LISTEN=127.0.0.1:$port MARUTA_HTTP_LISTEN=$http MARUTA_DATA_DIR=$dir/maruta-data \
        exec "$b" run > "$dir/receiver.log" 2>&1) &
      recv_pid=$!
      echo "$http" > "$dir/http"
      ;;
    fluent-bit)
      mkdir -p "$dir/buf" "$dir/out"
      cat > "$dir/fluent-bit.conf" <<EOF
[SERVICE]
    Flush 1
    storage.path $dir/buf
[INPUT]
    Name forward
    Listen 127.0.0.1
    Port $port
    storage.type filesystem
[OUTPUT]
    Name file
    Match *
    Path $dir/out
    File all.jsonl
    Format plain
EOF
      "$FLUENT_BIT_BIN" -c "$dir/fluent-bit.conf" > "$dir/receiver.log" 2>&1 &
      recv_pid=$!
      ;;
  esac
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$recv_pid" 2>/dev/null || { cat "$dir/receiver.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$r did not listen on $port" >&2; return 1
}

# received so far (for the drain wait): maruta's forward events counter,
# Fluent Bit's output lines.
received() { # receiver dir
  case ${1%%@*} in
    maruta) { curl -fs "http://$(cat "$2/http")/metrics" || true; } | awk '/^maruta_forward_events_total/ { s += $NF } END { printf "%d", s }' ;;
    fluent-bit) { cat "$2"/out/all.jsonl 2>/dev/null || true; } | wc -l ;;
  esac
}

stored() { # receiver dir
  case ${1%%@*} in
    maruta)
      echo "SELECT count(*) AS n FROM read_parquet('$2/maruta-data/lake/**/*.parquet')" |
        MARUTA_DUCKDB_DIR=$duckdb_dir node -e '
          const { createRequire } = require("node:module");
          const r = createRequire(process.env.MARUTA_DUCKDB_DIR + "/");
          const { DuckDBInstance } = r("@duckdb/node-api");
          (async () => {
            let sql = ""; for await (const c of process.stdin) sql += c;
            const conn = await (await DuckDBInstance.create(":memory:")).connect();
            const rows = (await conn.runAndReadAll(sql)).getRowsJson();
            console.log(String(rows[0][0]));
          })().catch((e) => { console.log(0); console.error(String(e)); });' ;;
    fluent-bit) { cat "$2"/out/all.jsonl 2>/dev/null || true; } | wc -l ;;
  esac
}

# p50/p99 in ms of a Prometheus histogram in the metrics text on stdin
# (summed over its label sets; linear within a bucket, as histogram_quantile).
quantiles() { # metric name
  awk -v m="$1" '
    index($0, m "_bucket{") == 1 {
      le = $0; sub(/.*le="/, "", le); sub(/".*/, "", le)
      c[le] += $NF; if (!(le in seen)) { seen[le] = 1; les[n++] = le }
    }
    END {
      if (n == 0) { printf "-/-"; exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (les[j] + 0 < les[i] + 0 || les[i] == "+Inf") { t = les[i]; les[i] = les[j]; les[j] = t }
      total = c["+Inf"]; if (total == 0) { printf "-/-"; exit }
      split("0.5 0.99", qs, " ")
      for (k = 1; k <= 2; k++) {
        want = qs[k] * total; prev = 0; lo = 0
        for (i = 0; i < n; i++) {
          le = les[i]; cum = c[le]
          if (cum >= want) {
            v = (le == "+Inf") ? lo : lo + (le - lo) * (want - prev) / (cum - prev > 0 ? cum - prev : 1)
            break
          }
          prev = cum; lo = le
        }
        printf "%s%.2f", (k == 1 ? "" : "/"), v * 1000
      }
    }'
}

printf '%-11s %-12s %10s %10s %7s %8s %12s %9s %8s %13s %13s  %s\n' receiver mode lines stored lost cpu_s cpu_s_per_1M exit_s lines_s ack_p50/p99 fsync_p50/p99 loadavg
for r in "${receivers[@]}"; do
  for mode in $modes; do
    n=$lines opts=()
    case $mode in
      default) ;;
      async) opts=(--log-opt fluentd-async=true) ;;
      request-ack) opts=(--log-opt fluentd-request-ack=true); n=$ack_lines ;;
      *) echo "unknown mode $mode" >&2; exit 1 ;;
    esac
    label=$r; [ "$r" = "${r#*@}" ] || label=${r%%@*}@$(basename "${r#*@}")
    dir=$out/$label-$mode port=$(free_port)
    start_receiver "$r" "$dir" "$port"
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s%N)
    names=() runs=()
    for i in $(seq "$containers"); do
      name=bench-$mode-$i
      names+=("$name")
      docker run -d --name "$name" --network none --log-driver fluentd \
        --log-opt "fluentd-address=127.0.0.1:$port" --log-opt 'tag=docker.{{.Name}}' "${opts[@]}" \
        maruta-bench-busybox seq 1 "$n" >/dev/null &
      runs+=($!)
    done
    wait "${runs[@]}" || true
    timeout "$timeout_s" docker wait "${names[@]}" >/dev/null || echo "containers still running after ${timeout_s}s: removed" >&2
    exit_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    last=-1 since=$(date +%s)
    while :; do
      c=$(received "$r" "$dir")
      [ "$c" -ge $((containers * n)) ] && break
      [ "$c" != "$last" ] && { last=$c; since=$(date +%s); }
      [ $(( $(date +%s) - since )) -ge 12 ] && break
      sleep 0.5
    done
    if [ ! -e "/proc/$recv_pid/stat" ]; then
      echo "$r exited during the run; its log ends:" >&2; tail -20 "$dir/receiver.log" >&2; exit 1
    fi
    cpu=$(cpu_s "$recv_pid")
    ackq=- fsyncq=-
    if [ "${r%%@*}" = maruta ]; then
      metrics=$(curl -fs "http://$(cat "$dir/http")/metrics" || true)
      ackq=$(quantiles maruta_forward_ack_latency_seconds <<< "$metrics")
      fsyncq=$(quantiles maruta_buffer_fsync_duration_seconds <<< "$metrics")
    fi
    kill -TERM "$recv_pid"; wait "$recv_pid" 2>/dev/null || true; recv_pid=
    docker rm -f "${names[@]}" >/dev/null 2>&1 || true
    s=$(stored "$r" "$dir")
    total=$((containers * n))
    awk -v r="$label" -v m="$mode" -v t="$total" -v s="$s" -v c="$cpu" -v e="$exit_s" -v l="$load" -v a="$ackq" -v f="$fsyncq" 'BEGIN {
      printf "%-11s %-12s %10d %10d %6.1f%% %8.2f %12.2f %9.1f %8.0f %13s %13s  %s\n", r, m, t, s, 100 * (t - s) / t, c, c * 1e6 / (s > 0 ? s : 1), e, s / (e > 0 ? e : 1), a, f, l }'
    grep -c 'Failed to log msg' "$tmp/dockerd.log" | sed 's/^/  dockerd "Failed to log msg" so far: /' >&2 || true
    rm -rf "$dir/maruta-data" "$dir/out" "$dir/buf"
  done
done
