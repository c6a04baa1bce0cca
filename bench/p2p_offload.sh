#!/usr/bin/env bash
# P2P offload benchmark: `mediamesh serve --demo` and N headless viewers
# (`mediamesh peer`) watching the demo channel for D seconds, once with P2P and once
# with --no-p2p, on the same server. Reports offload (p2p_bytes / all segment bytes)
# against its ceiling 1 - 1/N, and stalls / stall seconds / start-up of both runs.
# Run on demand (not in CI). See bench/README.md.
#
# Usage: bench/p2p_offload.sh [-n VIEWERS] [-d SECONDS] [-o JSON]
#   env: VIEWERS (12), DURATION (80), EXTRA (extra flags for both peer runs), WARMUP (10 s),
#        CARGO_TARGET_DIR (~/.cache/mediamesh-target), MEDIAMESH_BIN=path skips the build,
#        KEEP_TMP=1 keeps the temp dir (logs, stats files).
set -euo pipefail

VIEWERS=${VIEWERS:-12}
DURATION=${DURATION:-80}
EXTRA=${EXTRA:-}
WARMUP=${WARMUP:-10}
JSON=""
while getopts "n:d:o:h" opt; do
  case $opt in
    n) VIEWERS=$OPTARG ;;
    d) DURATION=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}"
if [ -z "${MEDIAMESH_BIN:-}" ]; then
  cargo build --release -q -p mediamesh
  MEDIAMESH_BIN="$CARGO_TARGET_DIR/release/mediamesh"
fi
[ -n "$JSON" ] || JSON="$ROOT/bench/results/p2p_offload-$(date -u +%Y%m%d-%H%M%S).json"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
HTTP=$(free_port); RTMP=$(free_port)
"$MEDIAMESH_BIN" serve --demo --http "127.0.0.1:$HTTP" --rtmp "127.0.0.1:$RTMP" --data "$TMP/data" \
  >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
URL="http://127.0.0.1:$HTTP/live/demo/index.m3u8"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$URL" && break
  sleep 0.2
done
curl -sf -o /dev/null "$URL" || { echo "demo channel did not come up"; cat "$TMP/serve.log"; exit 1; }
# Let the live window fill past the viewers' live offset (3 segments), so that both
# runs start on a running stream.
sleep "$WARMUP"

echo "== $VIEWERS viewers, ${DURATION}s, with P2P"
# shellcheck disable=SC2086
"$MEDIAMESH_BIN" peer "$URL" --count "$VIEWERS" --duration "$DURATION" --stats "$TMP/p2p.json" $EXTRA \
  2>"$TMP/peer-p2p.log"
echo "== $VIEWERS viewers, ${DURATION}s, --no-p2p"
# shellcheck disable=SC2086
"$MEDIAMESH_BIN" peer "$URL" --count "$VIEWERS" --duration "$DURATION" --no-p2p --stats "$TMP/http.json" $EXTRA \
  2>"$TMP/peer-http.log"

python3 - "$TMP/p2p.json" "$TMP/http.json" "$JSON" "$VIEWERS" "$DURATION" <<'PY'
import json, os, sys, datetime
p2p, http, out, n, dur = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
a = json.load(open(p2p))["total"]; b = json.load(open(http))["total"]
ceiling = 1 - 1 / n
res = {
    "date": datetime.datetime.utcnow().isoformat() + "Z",
    "viewers": n, "duration_s": dur,
    "p2p": a, "no_p2p": b,
    "offload": a["offload"], "ceiling": ceiling,
    "share_of_ceiling": a["offload"] / ceiling if ceiling else None,
    "load": open("/proc/loadavg").read().split()[:3],
}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(res, open(out, "w"), indent=2)
row = "{:<10} {:>12} {:>12} {:>8} {:>7} {:>9} {:>10} {:>8}"
print(row.format("run", "http_bytes", "p2p_bytes", "offload", "stalls", "stall_s", "startup50", "errors"))
for name, t in (("p2p", a), ("no-p2p", b)):
    print(row.format(name, t["http_bytes"], t["p2p_bytes"], f'{t["offload"]:.3f}', t["stalls"],
                     f'{t["stall_seconds"]:.2f}', f'{t["startup_seconds_p50"] or 0:.3f}', t["errors"]))
print(f"offload {a['offload']:.3f} of ceiling {ceiling:.3f} = {res['share_of_ceiling']:.1%}; "
      f"HTTP bytes with P2P / without = {a['http_bytes'] / max(b['http_bytes'], 1):.3f}")
print("wrote", out)
PY
