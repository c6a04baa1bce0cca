#!/usr/bin/env bash
# Glass-to-glass latency of WHEP (WebRTC) against LL-HLS for one RTMP publish, in
# headless Chromium, from a clock burnt into the picture (bench/glass_latency.mjs says
# how): no server timestamp is trusted. Same machine, same clock, loopback network, so
# it measures encode + ingest + packaging/fan-out + player buffering + decode.
#
#   bench/whep_latency.sh            # 30 s of samples per mode
#   SECONDS_PER_MODE=60 bench/whep_latency.sh -o /tmp/latency.json
#
# Env: MEDIAMESH_BIN (default: cargo build --release), CARGO_TARGET_DIR, SECONDS_PER_MODE.
# Needs ffmpeg, Chromium and web/node_modules (bash .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
out="bench/results/whep_latency-$(date -u +%Y%m%dT%H%M%SZ).json"
while getopts "o:" o; do case $o in o) out=$OPTARG ;; *) exit 2 ;; esac; done
secs=${SECONDS_PER_MODE:-30}
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
http=$(free_port); rtmp=$(free_port)
RUST_LOG=warn "$bin" serve --http "127.0.0.1:$http" --rtmp "127.0.0.1:$rtmp" --data "$tmp/data" 2>"$tmp/serve.log" &
pids+=($!)
sleep 2
# The clock: wall time in ms mod 2^20, bit i white or black in column i (32 px wide),
# stamped when the filter graph makes the frame (RTCTIME), then timestamps restored.
clock="nullsrc=s=640x360:r=30,setpts='RTCTIME/(1000000*TB)',geq=lum='255*mod(floor(mod(floor(T*1000)\,1048576)/pow(2\,floor(X/32)))\,2)':cb=128:cr=128,setpts='N/(30*TB)',format=yuv420p"
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "$clock" -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t $((secs * 2 + 60)) -c:v libx264 -preset veryfast -tune zerolatency -g 30 -b:v 1500k -c:a aac \
  -f flv "rtmp://127.0.0.1:$rtmp/live/clock" 2>"$tmp/ffmpeg.log" &
pids+=($!)
for _ in $(seq 1 60); do
  curl -sf -o /dev/null "http://127.0.0.1:$http/live/clock/index.m3u8" && break
  sleep 0.5
done
whep=$(node bench/glass_latency.mjs "http://127.0.0.1:$http/?stream=clock&mode=whep" "$secs")
hls=$(node bench/glass_latency.mjs "http://127.0.0.1:$http/?stream=clock&p2p=0" "$secs")
mkdir -p "$(dirname "$out")"
printf '{"date":"%s","load_average":"%s","whep":%s,"ll_hls":%s}\n' \
  "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$whep" "$hls" | tee "$out"
