#!/usr/bin/env bash
# P2P latency benchmark (issue 13): `mediamesh serve --demo`, VIEWERS native viewers
# (`mediamesh peer`) plus PAGES headless Chromium player pages watching the demo channel
# together for DURATION seconds, once per mode, one after the other on the same server:
#
#   off       P2P off: natives `--latency low --no-p2p`, pages `?p2p=0` (LL-HLS)
#   segments  P2P as before parts: natives `--latency max-offload`, stock
#             p2p-media-loader pages (whole segments, 16 s behind live)
#   parts     P2P with parts: natives `--latency low`, pages `?latency=low`
#   corrupt   as `parts`, and one more native viewer corrupts every part and segment
#             it uploads (`--corrupt-uploads 1`): its parts must be rejected and it
#             banned, latency must hold (its own figures are left out of the totals)
#
# For each: latency to live p50/p95 (each player's clock against the program date time
# of what it plays; the p50 of the viewers' p50s, the max of their p95s), offload (peer
# bytes / all media bytes), stalls and stall seconds, rejected parts/segments, bans.
# Also the machine's load average, since other jobs share it. Run on demand, not in CI.
# Needs node with web/node_modules (cd web && npm ci) and Chromium for the pages;
# PAGES=0 runs natives only.
#
# Usage: bench/p2p_latency.sh [-n VIEWERS] [-p PAGES] [-d SECONDS] [-m "off segments parts corrupt"] [-o JSON]
#   env: VIEWERS (12), PAGES (4), DURATION (120), MODES, WARMUP (12 s),
#        CARGO_TARGET_DIR (~/.cache/mediamesh-target), MEDIAMESH_BIN=path skips the
#        build, KEEP_TMP=1 keeps the temp dir (logs, stats files), PAGE_EXTRA is
#        appended to the parts pages' query (e.g. "&sync=2&catchup=1.05"), NATIVE_EXTRA
#        to the parts natives' flags (e.g. "--live-offset 2"), TOGETHER=1
#        runs the modes at the same time instead of one after the other, so that a
#        busy machine loads them alike (meant for MODES="off parts": P2P-off viewers
#        join no swarm; segments and parts viewers would share one swarm).
set -euo pipefail

VIEWERS=${VIEWERS:-12}
PAGES=${PAGES:-4}
DURATION=${DURATION:-120}
MODES=${MODES:-off segments parts corrupt}
WARMUP=${WARMUP:-12}
JSON=""
while getopts "n:p:d:m:o:h" opt; do
  case $opt in
    n) VIEWERS=$OPTARG ;;
    p) PAGES=$OPTARG ;;
    d) DURATION=$OPTARG ;;
    m) MODES=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}"
if [ -z "${MEDIAMESH_BIN:-}" ]; then
  cargo build --release -q -p mediamesh
  MEDIAMESH_BIN="$CARGO_TARGET_DIR/release/mediamesh"
fi
if [ "$PAGES" -gt 0 ] && [ ! -d web/node_modules/playwright-core ]; then
  echo "web/node_modules is missing: cd web && npm ci (or PAGES=0)" >&2
  exit 1
fi
[ -n "$JSON" ] || JSON="$ROOT/bench/results/p2p_latency-$(date -u +%Y%m%d-%H%M%S).json"
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
BASE="http://127.0.0.1:$HTTP"
URL="$BASE/live/demo/index.m3u8"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$URL" && break
  sleep 0.2
done
curl -sf -o /dev/null "$URL" || { echo "demo channel did not come up"; cat "$TMP/serve.log"; exit 1; }
# Fill the live window and let the origin settle its BANDWIDTH figures (p2p-media-loader
# hashes them into the swarm id).
sleep "$WARMUP"

run_mode() {
  local mode=$1 native_flags page_query corrupt=0
  case $mode in
    off) native_flags="--latency low --no-p2p"; page_query="?stream=demo&p2p=0" ;;
    segments) native_flags="--latency max-offload"; page_query="?stream=demo" ;;
    parts) native_flags="--latency low ${NATIVE_EXTRA:-}"; page_query="?stream=demo&latency=low${PAGE_EXTRA:-}" ;;
    corrupt) native_flags="--latency low"; page_query="?stream=demo&latency=low"; corrupt=1 ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "== $mode: $VIEWERS native + $PAGES pages, ${DURATION}s ($native_flags; page $page_query)"
  local pages_pid="" corrupt_pid=""
  if [ "$PAGES" -gt 0 ]; then
    node bench/p2p_pages.mjs "$BASE/$page_query" "$PAGES" "$DURATION" >"$TMP/$mode-pages.json" \
      2>"$TMP/$mode-pages.log" &
    pages_pid=$!
  fi
  if [ "$corrupt" = 1 ]; then
    # shellcheck disable=SC2086
    "$MEDIAMESH_BIN" peer "$URL" --count 1 --duration "$DURATION" $native_flags --corrupt-uploads 1 \
      --stats "$TMP/$mode-corrupt.json" 2>"$TMP/$mode-corrupt.log" &
    corrupt_pid=$!
  fi
  # shellcheck disable=SC2086
  "$MEDIAMESH_BIN" peer "$URL" --count "$VIEWERS" --duration "$DURATION" $native_flags \
    --stats "$TMP/$mode-native.json" 2>"$TMP/$mode-native.log" || echo "native viewers failed (see log)"
  [ -n "$corrupt_pid" ] && { wait "$corrupt_pid" || true; }
  if [ -n "$pages_pid" ]; then wait "$pages_pid" || echo "pages failed: $(tail -3 "$TMP/$mode-pages.log")"; fi
}

if [ "${TOGETHER:-0}" = 1 ]; then
  # All modes at once, so every mode meets the same load (see the header).
  mode_pids=()
  for m in $MODES; do run_mode "$m" & mode_pids+=($!); done
  for p in "${mode_pids[@]}"; do wait "$p" || true; done
else
  for m in $MODES; do run_mode "$m"; done
fi

python3 - "$TMP" "$JSON" "$VIEWERS" "$PAGES" "$DURATION" "$MODES" <<'PY'
import json, os, sys, datetime, statistics
tmp, out, n, pages, dur, modes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].split()

def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None

rows = {}
for m in modes:
    nat = load(f"{tmp}/{m}-native.json") or {}
    pg = load(f"{tmp}/{m}-pages.json") or []
    bad = load(f"{tmp}/{m}-corrupt.json")
    t = nat.get("total", {})
    p50s = [p["latency_to_live_p50_seconds"] for p in nat.get("peers", []) if p.get("latency_to_live_p50_seconds") is not None]
    p95s = [p["latency_to_live_p95_seconds"] for p in nat.get("peers", []) if p.get("latency_to_live_p95_seconds") is not None]
    pg_p50 = [p["latency_p50"] for p in pg if p.get("latency_p50") is not None]
    pg_p95 = [p["latency_p95"] for p in pg if p.get("latency_p95") is not None]
    http = t.get("http_bytes", 0) + sum(p["http_bytes"] for p in pg)
    peer = t.get("p2p_bytes", 0) + sum(p["p2p_bytes"] for p in pg)
    rows[m] = {
        "native": {
            "latency_p50": statistics.median(p50s) if p50s else None,
            "latency_p95": max(p95s) if p95s else None,
            "offload": t.get("offload"),
            "stalls": t.get("stalls"), "stall_seconds": t.get("stall_seconds"),
            "rejected_parts": t.get("rejected_parts"), "rejected_segments": t.get("rejected_segments"),
            "banned_peers": t.get("banned_peers"), "digest_bytes": t.get("digest_bytes"),
            "errors": t.get("errors"),
        },
        "pages": {
            "latency_p50": statistics.median(pg_p50) if pg_p50 else None,
            "latency_p95": max(pg_p95) if pg_p95 else None,
            "offload": (sum(p["p2p_bytes"] for p in pg) / max(1, sum(p["p2p_bytes"] + p["http_bytes"] for p in pg))) if pg else None,
            "stalls": sum(p["stalls"] for p in pg), "stall_seconds": sum(p["stall_seconds"] for p in pg),
            "rejected": sum(p["rejected"] for p in pg), "bans": sum(p["bans"] for p in pg),
            "errors": [p["error"] for p in pg if p.get("error")],
        },
        "offload_all": peer / max(1, peer + http),
        # Its own line (totals leave corrupting viewers out): what it uploaded.
        "corrupting_peer": bad and (bad.get("peers") or [None])[0],
        "raw": {"native": nat, "pages": pg},
    }

res = {
    "date": datetime.datetime.utcnow().isoformat() + "Z",
    "native_viewers": n, "pages": pages, "duration_s": dur,
    "modes": rows,
    "load": open("/proc/loadavg").read().split()[:3],
}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(res, open(out, "w"), indent=2)
f = lambda v, d=2: "-" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
hdr = "{:<9} {:>9} {:>9} {:>8} {:>7} {:>8} {:>9} {:>9} {:>8} {:>7} {:>8} {:>9}"
print(hdr.format("mode", "nat_p50", "nat_p95", "nat_off", "stalls", "rej_part", "page_p50", "page_p95", "page_off", "pstall", "rejected", "off_all"))
for m, r in rows.items():
    a, b = r["native"], r["pages"]
    print(hdr.format(m, f(a["latency_p50"]), f(a["latency_p95"]), f(a["offload"], 3), f(a["stalls"]),
                     f(a["rejected_parts"]), f(b["latency_p50"]), f(b["latency_p95"]), f(b["offload"], 3),
                     f(b["stalls"]), f(b["rejected"]), f(r["offload_all"], 3)))
print("load average:", " ".join(res["load"]))
print("wrote", out)
PY
