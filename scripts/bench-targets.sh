#!/usr/bin/env bash
# Runs the load scenarios of BENCHMARKS.md ("Targets") against a real maruta
# process on this machine: each scenario writes its config, starts maruta
# (pprof on), runs `maruta bench` against it, takes a CPU and an allocation
# profile in the middle of the run, stops maruta and prints the command and
# the report.
#
#   scripts/bench-targets.sh [jsonl|parquet|parquet_default|docker|soak|overload|groupcommit|all]...
#
# Environment: MARUTA_BIN (default: build bin/maruta), BENCH_OUT (default
# bench-results/<time>), BENCH_DURATION (default 30s; soak: 300s),
# MARUTA_VERSITYGW (overload; default .cache/bin/versitygw, `make tools`).
# The load generator runs on the same machine: note `uptime` in the output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_OUT:-$root/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
bin=${MARUTA_BIN:-}
if [ -z "$bin" ]; then
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -o bin/maruta ./cmd/maruta)
  bin=$root/bin/maruta
fi
dur=${BENCH_DURATION:-30s}
fwd=127.0.0.1:${BENCH_FORWARD_PORT:-24324}
http=127.0.0.1:${BENCH_HTTP_PORT:-24320}
pid=

start_maruta() { # name config-text
  local name=$1 dir=$out/$1
  rm -rf "$dir" && mkdir -p "$dir"
  printf '%s\n' "$2" > "$dir/maruta.yaml"
  "$bin" run -c "$dir/maruta.yaml" > "$dir/maruta.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "http://$http/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$dir/maruta.log"; return 1; }
    sleep 0.1
  done
  echo "maruta did not start" >&2
  return 1
}

stop_maruta() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ -n "${gwpid:-}" ] && kill -CONT "$gwpid" 2>/dev/null && kill "$gwpid" 2>/dev/null; true' EXIT

# profile name delay seconds: CPU and allocation profiles of maruta, taken
# in the background delay seconds into the run.
profile() {
  local dir=$out/$1
  (sleep "$2"
   curl -s -o "$dir/cpu.pprof" "http://$http/debug/pprof/profile?seconds=$3"
   curl -s -o "$dir/allocs.pprof" "http://$http/debug/pprof/allocs") &
  profpid=$!
}

# bench name args...: runs maruta bench, keeps the JSON and prints the text.
bench() {
  local name=$1 dir=$out/$1
  shift
  echo "## $name"
  echo "\$ uptime"
  uptime
  echo "\$ maruta bench $*"
  "$bin" bench -addr "$fwd" -metrics "$http" "$@" -quiet -json-file "$dir/result.json"
  echo
}

common_head() { # data folder
  cat <<EOF
node: bench
data_dir: $1
log: {level: warn}
http: {listen: $http, pprof: true}
sources:
  - type: forward
    listen: $fwd
EOF
}

# jsonl_output name: target 1's output, JSON lines files, fsync always.
jsonl_output() {
  cat <<EOF
outputs:
  - type: file
    name: out
    format: jsonl
    path: $out/$1/out/
    buffer:
      fsync: $2
      flush_interval: 5s
EOF
}

# lake_output: the local Parquet lake (file output, zstd), fsync always.
lake_output() {
  cat <<EOF
outputs:
  - type: file
    name: lake
    buffer:
      fsync: always
      flush_interval: 10s
EOF
}

# default_pipeline: the embedded default's steps (Docker partial lines,
# JSON log lines parsed into columns).
default_pipeline() {
  cat <<EOF
pipeline:
  - type: concat_partials
    name: docker_partials
  - type: parse
    name: json_log
    key: log
    format: json
    reserve_data: true
    remove_key_name_field: true
EOF
}

# measure name bench-args...: profiles 8 s into the run, runs the bench,
# stops maruta.
measure() {
  local name=$1
  shift
  profile "$name" 8 10
  bench "$name" "$@"
  wait "$profpid" || true
  stop_maruta
}

reference_load=(-mode packed -senders 16 -batch 1000 -ack -warmup 5s)

scenario_jsonl() { # target 1
  start_maruta jsonl "$(common_head "$out/jsonl/data")
$(jsonl_output jsonl always)"
  measure jsonl "${reference_load[@]}" -duration "$dur"
}

scenario_parquet() { # target 2: the load of target 1 into the Parquet lake, no pipeline
  start_maruta parquet "$(common_head "$out/parquet/data")
$(lake_output)"
  measure parquet "${reference_load[@]}" -duration "$dur"
}

scenario_parquet_default() { # the same with the embedded default pipeline
  start_maruta parquet_default "$(common_head "$out/parquet_default/data")
$(default_pipeline)
$(lake_output)"
  measure parquet_default "${reference_load[@]}" -duration "$dur"
}

# groupcommit: issue 3's target, 64 acked senders with fsync always vs off
# (the jsonl file output of target 1), for PackedForward senders of 1000
# records and Docker senders (one record per request).
scenario_groupcommit() {
  local mode fsync name
  for mode in packed docker; do
    for fsync in always off; do
      name=gc_${mode}_$fsync
      start_maruta "$name" "$(common_head "$out/$name/data")
$(jsonl_output "$name" "$fsync")"
      bench "$name" -mode "$mode" -senders 64 -batch 1000 -ack -duration "${BENCH_GC_DURATION:-20s}" -warmup 5s
      stop_maruta
    done
  done
}

scenario_docker() { # target 3
  start_maruta docker "$(common_head "$out/docker/data")
$(jsonl_output docker always)"
  measure docker -mode docker -senders 200 -ack -duration "$dur" -warmup 5s
}

scenario_soak() { # target 4
  local rate=${BENCH_SOAK_RATE:-12500}
  start_maruta soak "$(common_head "$out/soak/data")
$(default_pipeline)
$(lake_output)"
  profile soak 60 20
  bench soak -mode packed -senders 16 -batch 500 -ack -rate "$rate" -duration "${BENCH_SOAK_DURATION:-300s}" -warmup 10s -interval 10s
  wait "$profpid" || true
  python3 - "$out/soak/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("timeline (every 10 s): acked/s, delivered/s, rss MB, buffer MB")
for p in r["timeline"]:
    print(f"  {p['t']:6.0f}s {p['acked_per_sec']:9.0f} {p.get('delivered_per_sec', 0):9.0f} {p.get('rss_mb', 0):6.0f} {p.get('buffer_mb', 0):7.1f}")
PY
  stop_maruta
}

scenario_overload() {
  local gw=${MARUTA_VERSITYGW:-$root/.cache/bin/versitygw} gwport=${BENCH_S3_PORT:-24330}
  local gwdir=$out/overload-s3 stall=${BENCH_STALL:-40}
  mkdir -p "$gwdir"
  "$gw" --port "127.0.0.1:$gwport" --access bench --secret benchsecret --region us-east-1 --quiet posix "$gwdir" > "$out/overload-gw.log" 2>&1 &
  gwpid=$!
  for _ in $(seq 50); do curl -s "http://127.0.0.1:$gwport" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:benchsecret \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" -X PUT "http://127.0.0.1:$gwport/lake" >/dev/null
  start_maruta overload "$(common_head "$out/overload/data")
outputs:
  - type: s3
    name: lake
    bucket: lake
    endpoint: http://127.0.0.1:$gwport
    region: us-east-1
    access_key_id: bench
    secret_access_key: benchsecret
    format: jsonl
    buffer:
      fsync: always
      flush_interval: 2s
      chunk_limit_size: 16MiB
      total_limit_size: 256MiB
      overflow_action: block"
  # The S3 server stops answering (SIGSTOP) from the start for $stall s:
  # uploads hang, the buffer fills to total_limit_size, Consume blocks,
  # acks stop and TCP pushes the senders back; then it is resumed.
  kill -STOP "$gwpid"
  (sleep "$stall"; kill -CONT "$gwpid") &
  contpid=$!
  profile overload 10 10
  bench overload -mode packed -senders 16 -batch 1000 -ack -ack-timeout 300s -duration "${BENCH_OVERLOAD_DURATION:-60s}" -warmup 0s -drain 5m -interval 5s
  wait "$profpid" "$contpid" || true
  python3 - "$out/overload/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("timeline (every 5 s): acked/s, accepted/s, delivered/s, rss MB, buffer MB, blocked appends")
for p in r["timeline"]:
    print(f"  {p['t']:6.0f}s {p['acked_per_sec']:9.0f} {p.get('accepted_per_sec', 0):9.0f} {p.get('delivered_per_sec', 0):9.0f} {p.get('rss_mb', 0):6.0f} {p.get('buffer_mb', 0):7.1f} {p.get('blocked_appends', 0):4.0f}")
m = r["maruta"]
print(f"acked {r['acked']}  accepted {m['accepted']}  delivered {m['delivered']}  lost {max(0, r['acked'] - m['delivered'])}")
PY
  stop_maruta
  kill "$gwpid" 2>/dev/null; wait "$gwpid" 2>/dev/null || true
  gwpid=
}

scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(all)
[ "${scenarios[0]}" = all ] && scenarios=(jsonl parquet parquet_default docker soak overload groupcommit)
echo "# maruta bench targets, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $("$bin" version)"
echo "results and profiles in $out"
echo
for s in "${scenarios[@]}"; do
  "scenario_$s"
done
