#!/usr/bin/env bash
# Glass-to-glass latency, every way in and every way out: publish over RTMP, SRT (ffmpeg)
# and WHIP (headless Chromium), play over WHEP (WebRTC) and LL-HLS (hls.js), in headless
# Chromium, from a clock burnt into the picture (bench/glass_latency.mjs reads it,
# bench/whip_clock.mjs and the ffmpeg filter below paint it): no server timestamp is
# trusted. Same machine, same clock, loopback network, so a figure is encode + ingest +
# packaging or fan-out + player buffering + decode. One source at a time; each is
# played over WHEP, then over LL-HLS.
#
#   bench/latency.sh                       # 30 s of samples per row
#   SECONDS_PER_ROW=60 SOURCES="rtmp srt" bench/latency.sh -o /tmp/latency.json
#
# Env: MEDIAMESH_BIN (default: cargo build --release), CARGO_TARGET_DIR,
# SECONDS_PER_ROW (30), SOURCES ("rtmp srt whip"; whip is skipped, and said so, when
# the server has no /whip), PART_TARGET (the server's --part-target in seconds; its
# default, 0.5, when unset: LL-HLS players sit about three part targets behind live). Needs ffmpeg, Chromium and web/node_modules (bash .ci/run
# installs them). Prints and writes one JSON object: a row per source → player with
# p50/p95 ms, and the load average before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
out="bench/results/latency-$(date -u +%Y%m%dT%H%M%SZ).json"
while getopts "o:" o; do case $o in o) out=$OPTARG ;; *) exit 2 ;; esac; done
secs=${SECONDS_PER_ROW:-30}
sources=${SOURCES:-rtmp srt whip}
bin=${MEDIAMESH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -p mediamesh >&2
  bin="${CARGO_TARGET_DIR:-target}/release/mediamesh"
fi
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
http=$(free_port); rtmp=$(free_port); srt=$(free_port)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
part_args=()
[ -n "${PART_TARGET:-}" ] && part_args=(--part-target "$PART_TARGET")
RUST_LOG=warn "$bin" serve --http "127.0.0.1:$http" --rtmp "127.0.0.1:$rtmp" \
  --srt "127.0.0.1:$srt" --data "$tmp/data" "${part_args[@]}" 2>"$tmp/serve.log" &
pids+=($!)
base="http://127.0.0.1:$http"
for _ in $(seq 1 40); do curl -sf -o /dev/null "$base/healthz" && break; sleep 0.25; done
# The clock: wall time in ms mod 2^20, bit i white or black in column i (32 px wide),
# stamped when the filter graph makes the frame (RTCTIME), then timestamps restored.
clock="nullsrc=s=640x360:r=30,setpts='RTCTIME/(1000000*TB)',geq=lum='255*mod(floor(mod(floor(T*1000)\,1048576)/pow(2\,floor(X/32)))\,2)':cb=128:cr=128,setpts='N/(30*TB)',format=yuv420p"
encode=(-c:v libx264 -preset veryfast -tune zerolatency -g 30 -b:v 1500k -c:a aac)
run_time=$((secs * 2 + 60))

publish() { # source stream; sets $pid (not $(…): the publisher would hold its stdout)
  case $1 in
    rtmp) ffmpeg -hide_banner -loglevel error -re -f lavfi -i "$clock" -f lavfi -i sine=frequency=440:sample_rate=48000 \
            -t "$run_time" "${encode[@]}" -f flv "rtmp://127.0.0.1:$rtmp/live/$2" >/dev/null 2>"$tmp/$1.log" & ;;
    srt)  ffmpeg -hide_banner -loglevel error -re -f lavfi -i "$clock" -f lavfi -i sine=frequency=440:sample_rate=48000 \
            -t "$run_time" "${encode[@]}" -f mpegts "srt://127.0.0.1:$srt?streamid=live/$2&latency=120000" >/dev/null 2>"$tmp/$1.log" & ;;
    whip) node bench/whip_clock.mjs "$base/whip/$2" "$run_time" >"$tmp/$1.log" 2>&1 & ;;
  esac
  pid=$!
}

rows=""
for src in $sources; do
  stream="clock-$src"
  if [ "$src" = whip ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$base/whip/$stream" || true)
    if [ "$code" != 204 ] && [ "$code" != 200 ]; then
      echo "whip: this server has no /whip ($code); row skipped" >&2
      rows+="\"whip\":{\"skipped\":\"no /whip on this server\"},"
      continue
    fi
  fi
  publish "$src" "$stream"
  pids+=("$pid")
  up=no
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "$base/live/$stream/index.m3u8" && { up=yes; break; }
    sleep 0.5
  done
  if [ $up = no ]; then
    echo "$src: the stream never came up; see below" >&2
    cat "$tmp/$src.log" >&2 || true
    rows+="\"$src\":{\"error\":\"no stream\"},"
    kill "$pid" 2>/dev/null || true
    continue
  fi
  sleep 3 # a few segments, so LL-HLS starts at the live edge like a viewer would
  whep=$(node bench/glass_latency.mjs "$base/?stream=$stream&mode=whep" "$secs" || true)
  hls=$(node bench/glass_latency.mjs "$base/?stream=$stream&p2p=0" "$secs" || true)
  echo "$src → WHEP: $whep" >&2
  echo "$src → LL-HLS: $hls" >&2
  rows+="\"$src\":{\"whep\":${whep:-null},\"ll_hls\":${hls:-null}},"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
mkdir -p "$(dirname "$out")"
printf '{"date":"%s","seconds_per_row":%s,"part_target":"%s","load_average_before":"%s","load_average_after":"%s",%s"server":"%s"}\n' \
  "$(date -u +%FT%TZ)" "$secs" "${PART_TARGET:-default}" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$rows" \
  "$("$bin" --version 2>/dev/null || echo mediamesh)" | tee "$out"
