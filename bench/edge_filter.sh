#!/usr/bin/env bash
# Edge filter benchmark: what Proxy-Wasm filters cost on the edge's hot path.
#
#   (a) req/s and edge CPU µs per request of cached 1 KB hits (wrk, median of REPEATS),
#       side by side: an edge with no filter, with a trivial filter (WAT, adds one
#       response header), and with the SDK-built example filter (Rust proxy-wasm SDK:
#       property read, header get/set/remove, shared-data CAS counter per request);
#   (b) the per-request overhead of each filter in process (examples/filter_overhead
#       in crate edge): p50/p99 over ITERATIONS requests; the target is ≤ 20 µs p50.
# The three edges run one at a time against the same origin (edge_cache.py's) on the
# same cores, in alternating order. Writes JSON to bench/results/. Run on demand.
#
# Usage: bench/edge_filter.sh [-d WRK_SECONDS] [-r REPEATS] [-o JSON]
#   env: DURATION (10), REPEATS (3), WRK_THREADS (2), WRK_CONNS (50), ITERATIONS (200000),
#        CARGO_TARGET_DIR (~/.cache/mediamesh-target), MEDIAMESH_BIN=path skips the build
#        (then OVERHEAD_BIN=path to the filter_overhead example too), KEEP_TMP=1.
set -euo pipefail

DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-50}
ITERATIONS=${ITERATIONS:-200000}
JSON=""
while getopts "d:r:o:h" opt; do
  case $opt in
    d) DURATION=$OPTARG ;;
    r) REPEATS=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
FIX="$REPO/crates/compute/fixtures"
mkdir -p "$BENCH_DIR/results"
JSON=${JSON:-$BENCH_DIR/results/edge_filter-$(date +%Y%m%d-%H%M%S).json}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}
log() { printf '[edge_filter] %s\n' "$*" >&2; }

for c in wrk python3; do
  command -v $c >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y wrk python3 >&2 || { apt-get update >&2; apt-get install -y wrk python3 >&2; }
  }
done

if [ -n "${MEDIAMESH_BIN:-}" ]; then
  MEDIAMESH=$MEDIAMESH_BIN
  OVERHEAD=${OVERHEAD_BIN:-$CARGO_TARGET_DIR/release/examples/filter_overhead}
else
  log "building mediamesh and the filter_overhead example (release) in $CARGO_TARGET_DIR"
  (cd "$REPO" && cargo build --release -p mediamesh >&2 && cargo build --release -p edge --example filter_overhead >&2)
  MEDIAMESH="$CARGO_TARGET_DIR/release/mediamesh"
  OVERHEAD="$CARGO_TARGET_DIR/release/examples/filter_overhead"
fi
[ -x "$MEDIAMESH" ] && [ -x "$OVERHEAD" ] || { log "missing $MEDIAMESH or $OVERHEAD"; exit 1; }
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT="$COMMIT+dirty"
ulimit -n 65536 2>/dev/null || true

TMP=$(mktemp -d /tmp/edge-filter-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t PORTS < <(python3 "$BENCH_DIR/edge_cache.py" freeports 4)
ORIGIN=${PORTS[0]}
python3 "$BENCH_DIR/edge_cache.py" origin --port "$ORIGIN" --delay-ms 0 >"$TMP/origin.log" 2>&1 &
PIDS+=("$!")
python3 "$BENCH_DIR/edge_cache.py" wait-http "http://127.0.0.1:$ORIGIN/__origin_stats" 15 ||
  { log "origin did not come up"; cat "$TMP/origin.log" >&2; exit 1; }

SDK_CONFIG='{"blocked":["/private/"],"header_name":"x-edge-filter","header_value":"bench"}'
cat >"$TMP/sdk.toml" <<EOF
[[filter]]
file = "$FIX/token_check.wasm"
configuration = '$SDK_CONFIG'
EOF
EDGES=()
start_edge() { # name port extra-args...
  local name=$1 port=$2; shift 2
  RUST_LOG=warn "$MEDIAMESH" edge --http "127.0.0.1:$port" --origin "http://127.0.0.1:$ORIGIN" \
    --max-connections-per-ip 100000 "$@" \
    >"$TMP/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  python3 "$BENCH_DIR/edge_cache.py" wait-http "http://127.0.0.1:$port/healthz" 30 ||
    { log "$name did not come up"; cat "$TMP/$name.log" >&2; exit 1; }
  EDGES+=(--edge "$name:$port:$pid")
}
start_edge no-filter "${PORTS[1]}"
start_edge trivial-filter "${PORTS[2]}" --filter "$FIX/pass.wat"
start_edge sdk-filter "${PORTS[3]}" --config "$TMP/sdk.toml"

log "in-process overhead, $ITERATIONS requests per filter"
O1=$("$OVERHEAD" "$FIX/pass.wat" "$ITERATIONS")
O2=$("$OVERHEAD" "$FIX/token_check.wasm" "$ITERATIONS" "$SDK_CONFIG")

log "running: wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s x $REPEATS per edge"
python3 "$BENCH_DIR/edge_filter.py" "${EDGES[@]}" --origin "$ORIGIN" --tmp "$TMP" --json "$JSON" \
  --commit "$COMMIT" --filters "{\"trivial-filter\": \"pass.wat\", \"sdk-filter\": \"token_check.wasm\"}" \
  --overhead "$O1" --overhead "$O2" --duration "$DURATION" --repeats "$REPEATS" \
  --wrk-threads "$WRK_THREADS" --wrk-conns "$WRK_CONNS"
