#!/usr/bin/env bash
# Edge ABR ladder benchmark: origin->edge bytes when the edge transcodes the lower
# renditions vs when the origin publishes the full ladder, and the time to first byte
# of a transcoded segment vs a cached hit. Run on demand (not in CI). See bench/README.md.
#
#  (a) edge ladder: ffmpeg publishes one 1280x720 rendition (src) to the origin; the
#      edge runs --ladder 480p/360p/240p and transcodes on first request.
#  (b) full ladder at the origin: one ffmpeg encodes the same four renditions at the
#      same rates and publishes each as its own stream (cam, cam_480p, cam_360p,
#      cam_240p: the mediamesh origin takes one rendition per RTMP publish), through a
#      plain edge. The origin->edge bytes are those of the four renditions either way.
#  In both runs VIEWERS `mediamesh peer --no-p2p` viewers per rendition (4 renditions)
#  watch for DURATION seconds; origin->edge bytes = the edge's mediamesh_edge_upstream_bytes_total
#  over that window. Then, with no viewer left, TTFB_SEGMENTS new segments of each rung
#  are asked for twice (first = transcode, second = cached hit), timed by curl.
#
# Usage: bench/edge_ladder.sh [-n VIEWERS] [-d SECONDS] [-o JSON]
#   env: VIEWERS (2 per rendition), DURATION (60), WARMUP (12 s), TTFB_SEGMENTS (8),
#        LADDER_JOBS (cores), CARGO_TARGET_DIR (~/.cache/mediamesh-target),
#        MEDIAMESH_BIN=path skips the build, KEEP_TMP=1 keeps the temp dir.
set -euo pipefail

VIEWERS=${VIEWERS:-2}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-12}
TTFB_SEGMENTS=${TTFB_SEGMENTS:-8}
LADDER_JOBS=${LADDER_JOBS:-$(nproc)}
JSON=""
while getopts "n:d:o:h" opt; do
  case $opt in
    n) VIEWERS=$OPTARG ;;
    d) DURATION=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}"
if [ -z "${MEDIAMESH_BIN:-}" ]; then
  cargo build --release -q -p mediamesh
  MEDIAMESH_BIN="$CARGO_TARGET_DIR/release/mediamesh"
fi
command -v ffmpeg >/dev/null || { echo "ffmpeg is missing (apt-get install ffmpeg)"; exit 1; }
[ -n "$JSON" ] || JSON="$ROOT/bench/results/edge_ladder-$(date -u +%Y%m%d-%H%M%S).json"
TMP=$(mktemp -d)
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_all
  [ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_200() {
  for _ in $(seq 1 150); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.2
  done
  echo "$1 did not come up"; return 1
}
upstream_bytes() {
  curl -sf "$1/metrics" | awk '/^mediamesh_edge_upstream_bytes_total /{s+=$2} END{printf "%d\n", s}'
}

# Rungs: name, width, height, video kbit/s. The source is 1280x720 at 3000 kbit/s.
RUNGS=("480p 854 480 1200" "360p 640 360 800" "240p 426 240 400")
SRC_KBPS=3000
SOURCE=(-re -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000")
x264() { # kbps -> encoder flags (2 s GOP, closed, as an encoder feeding a live origin)
  echo "-c:v libx264 -preset veryfast -tune zerolatency -g 60 -keyint_min 60 -sc_threshold 0 -b:v ${1}k -maxrate ${1}k -bufsize $((2 * $1))k -pix_fmt yuv420p -c:a aac -b:a 128k"
}

start_origin() {
  OHTTP=$(free_port); ORTMP=$(free_port)
  "$MEDIAMESH_BIN" origin --http "127.0.0.1:$OHTTP" --rtmp "127.0.0.1:$ORTMP" --data "$TMP/data-$1" \
    >"$TMP/origin-$1.log" 2>&1 &
  PIDS+=($!)
  wait_200 "http://127.0.0.1:$OHTTP/healthz"
}
start_edge() {
  EHTTP=$(free_port)
  # shellcheck disable=SC2068
  "$MEDIAMESH_BIN" edge --http "127.0.0.1:$EHTTP" --origin "http://127.0.0.1:$OHTTP" $@ \
    >"$TMP/edge-$RUN.log" 2>&1 &
  PIDS+=($!)
  EDGE="http://127.0.0.1:$EHTTP"
  wait_200 "$EDGE/healthz"
}
# run_viewers LABEL URL RENDITION: VIEWERS peers of one rendition, in the background.
run_viewers() {
  "$MEDIAMESH_BIN" peer "$2" --no-p2p --rendition "$3" --count "$VIEWERS" --duration "$DURATION" \
    --stats "$TMP/peer-$RUN-$1.json" 2>"$TMP/peer-$RUN-$1.log" &
  VPIDS+=($!)
}

echo "== (a) origin publishes src only, edge ladder ${RUNGS[*]// /:}"
RUN=a
start_origin a
# shellcheck disable=SC2046
ffmpeg -hide_banner -loglevel error "${SOURCE[@]}" $(x264 $SRC_KBPS) -f flv "rtmp://127.0.0.1:$ORTMP/live/cam" \
  >"$TMP/ffmpeg-a.log" 2>&1 &
PIDS+=($!)
LADDER_FLAGS=""
for r in "${RUNGS[@]}"; do
  read -r n w h k <<<"$r"
  LADDER_FLAGS+=" --ladder $n=${w}x$h@$k"
done
start_edge $LADDER_FLAGS --ladder-jobs "$LADDER_JOBS"
wait_200 "$EDGE/live/cam/index.m3u8"
sleep "$WARMUP"
curl -sf "$EDGE/live/cam/index.m3u8" >"$TMP/multivariant-a.m3u8"
B0=$(upstream_bytes "$EDGE")
VPIDS=()
run_viewers src "$EDGE/live/cam/index.m3u8" 0
i=1
for r in "${RUNGS[@]}"; do
  read -r n _ <<<"$r"
  run_viewers "$n" "$EDGE/live/cam/index.m3u8" "$i"
  i=$((i + 1))
done
LOAD_A=$(cut -d' ' -f1-3 /proc/loadavg)
for p in "${VPIDS[@]}"; do wait "$p"; done
LOAD_A="$LOAD_A / $(cut -d' ' -f1-3 /proc/loadavg)"
B1=$(upstream_bytes "$EDGE")
BYTES_A=$((B1 - B0))
curl -sf "$EDGE/metrics" >"$TMP/metrics-a-viewers.txt"
echo "origin->edge bytes: $BYTES_A"

echo "== TTFB of transcoded segments (first request) vs cached hits, $TTFB_SEGMENTS segments x ${#RUNGS[@]} rungs"
: >"$TMP/ttfb.csv"
last_src_seg() { curl -sf "$EDGE/live/cam/src/index.m3u8" | grep '^seg' | tail -1; }
prev=$(last_src_seg)
for _ in $(seq 1 "$TTFB_SEGMENTS"); do
  seg=$prev
  for _ in $(seq 1 100); do
    seg=$(last_src_seg)
    [ "$seg" != "$prev" ] && break
    sleep 0.1
  done
  prev=$seg
  for r in "${RUNGS[@]}"; do
    read -r n _ <<<"$r"
    first=$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer}' "$EDGE/live/cam/$n/$seg")
    hit=$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer}' "$EDGE/live/cam/$n/$seg")
    echo "$n $seg $first $hit" >>"$TMP/ttfb.csv"
  done
done
curl -sf "$EDGE/metrics" >"$TMP/metrics-a.txt"
stop_all

echo "== (b) origin publishes the full ladder (4 streams), plain edge"
RUN=b
start_origin b
OUTS=(-map 0:v -map 1:a $(x264 $SRC_KBPS) -f flv "rtmp://127.0.0.1:$ORTMP/live/cam")
for r in "${RUNGS[@]}"; do
  read -r n w h k <<<"$r"
  # shellcheck disable=SC2206
  OUTS+=(-map 0:v -map 1:a -vf "scale=$w:$h" $(x264 "$k") -f flv "rtmp://127.0.0.1:$ORTMP/live/cam_$n")
done
ffmpeg -hide_banner -loglevel error "${SOURCE[@]}" "${OUTS[@]}" >"$TMP/ffmpeg-b.log" 2>&1 &
PIDS+=($!)
start_edge
wait_200 "$EDGE/live/cam/index.m3u8"
for r in "${RUNGS[@]}"; do
  read -r n _ <<<"$r"
  wait_200 "$EDGE/live/cam_$n/index.m3u8"
done
sleep "$WARMUP"
B0=$(upstream_bytes "$EDGE")
VPIDS=()
run_viewers src "$EDGE/live/cam/index.m3u8" 0
for r in "${RUNGS[@]}"; do
  read -r n _ <<<"$r"
  run_viewers "$n" "$EDGE/live/cam_$n/index.m3u8" 0
done
LOAD_B=$(cut -d' ' -f1-3 /proc/loadavg)
for p in "${VPIDS[@]}"; do wait "$p"; done
LOAD_B="$LOAD_B / $(cut -d' ' -f1-3 /proc/loadavg)"
B1=$(upstream_bytes "$EDGE")
BYTES_B=$((B1 - B0))
echo "origin->edge bytes: $BYTES_B"
stop_all

python3 - "$TMP" "$JSON" "$BYTES_A" "$BYTES_B" "$VIEWERS" "$DURATION" "$LOAD_A" "$LOAD_B" "$LADDER_JOBS" <<'PY'
import datetime, glob, json, os, re, sys
tmp, out, a, b, n, dur, load_a, load_b, jobs = sys.argv[1:10]
a, b = int(a), int(b)

def peers(run):
    res = {}
    for f in sorted(glob.glob(f"{tmp}/peer-{run}-*.json")):
        name = re.sub(rf"^.*/peer-{run}-(.*)\.json$", r"\1", f)
        t = json.load(open(f))["total"]
        res[name] = {k: t[k] for k in ("http_bytes", "stalls", "stall_seconds", "startup_seconds_p50", "errors")}
    return res

def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]

rows = [l.split() for l in open(f"{tmp}/ttfb.csv") if l.strip()]
first = [float(r[3]) * 1000 for r in rows if r[2] == "200"]
hit = [float(r[5]) * 1000 for r in rows if r[4] == "200"]
per_rung = {}
for r in rows:
    if r[2] == "200":
        per_rung.setdefault(r[0], []).append(float(r[3]) * 1000)
metrics = open(f"{tmp}/metrics-a.txt").read()
def metric(name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines() if l.startswith(name))
res = {
    "date": datetime.datetime.utcnow().isoformat() + "Z",
    "viewers_per_rendition": int(n), "renditions": 4, "duration_s": int(dur),
    "source": "1280x720 30 fps 3000 kbit/s + AAC 128 kbit/s (ffmpeg testsrc2)",
    "rungs": "480p=854x480@1200 360p=640x360@800 240p=426x240@400",
    "ladder_jobs": int(jobs),
    "origin_to_edge_bytes": {"edge_ladder": a, "origin_full_ladder": b,
                             "ratio_edge_ladder_over_full": a / b if b else None},
    "ttfb_ms": {
        "transcoded_first_request": {"n": len(first), "p50": pct(first, 50), "p99": pct(first, 99), "max": max(first or [0])},
        "cached_hit": {"n": len(hit), "p50": pct(hit, 50), "p99": pct(hit, 99)},
        "transcoded_p50_by_rung": {k: pct(v, 50) for k, v in per_rung.items()},
        "failed_first_requests": sum(1 for r in rows if r[2] != "200"),
    },
    "edge_transcodes": metric("mediamesh_edge_ladder_transcodes_total"),
    "edge_transcode_seconds_sum": metric("mediamesh_edge_ladder_transcode_seconds_sum"),
    "edge_transcode_errors": metric("mediamesh_edge_ladder_errors_total"),
    "viewers": {"edge_ladder": peers("a"), "origin_full_ladder": peers("b")},
    "loadavg_during_viewers": {"edge_ladder": load_a, "origin_full_ladder": load_b},
    "cores": os.cpu_count(),
}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(res, open(out, "w"), indent=2)
print(f"origin->edge bytes: edge ladder {a}, origin full ladder {b}, ratio {res['origin_to_edge_bytes']['ratio_edge_ladder_over_full']:.3f}")
t = res["ttfb_ms"]
print(f"TTFB transcoded (first request): p50 {t['transcoded_first_request']['p50']:.0f} ms, p99 {t['transcoded_first_request']['p99']:.0f} ms (n={len(first)}); "
      f"cached hit p50 {t['cached_hit']['p50']:.1f} ms, p99 {t['cached_hit']['p99']:.1f} ms")
print("transcoded p50 by rung (ms):", {k: round(v) for k, v in t["transcoded_p50_by_rung"].items()})
for run in ("edge_ladder", "origin_full_ladder"):
    for name, v in res["viewers"][run].items():
        print(f"  {run:<18} {name:<5} http_bytes {v['http_bytes']:>10} stalls {v['stalls']} errors {v['errors']}")
print("load average (start / end of viewers):", res["loadavg_during_viewers"])
print("wrote", out)
PY
