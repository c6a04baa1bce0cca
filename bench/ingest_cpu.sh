#!/usr/bin/env bash
# Ingest CPU benchmark: mediamesh vs nginx-rtmp (Debian's libnginx-mod-rtmp, HLS on).
#
# Publishes the same pre-encoded FLV (ffmpeg -c copy, no encoding) as N RTMP streams to
# each server at the same time, and over one measurement window measures the CPU time
# (utime+stime from /proc, all processes of each server) and RSS of both servers, side
# by side, so load from other jobs on the machine hits both alike. Also reads mediamesh's
# mediamesh_part_publish_delay_seconds metric (frame completing a part -> part in the
# playlist) and, as a sanity check, follows one stream with LL-HLS blocking reloads.
# Run on demand (not in CI). See bench/README.md.
#
# Usage: bench/ingest_cpu.sh [-n STREAMS] [-w WINDOW_S] [-u WARMUP_S] [-o JSON]
# Then the SRT row (SRT=0 skips it): two fresh mediamesh origins side by side, one
# taking the same N streams over RTMP and one over SRT (the same input remuxed to
# MPEG-TS by ffmpeg -c copy, `srt://…?streamid=live/sN`), CPU of each over one window.
#
#   env: STREAMS (4), WINDOW (60), WARMUP (10), POLL_INTERVAL (0.5), SRT (1),
#        CARGO_TARGET_DIR (~/.cache/mediamesh-target), KEEP_TMP=1 keeps the temp dir,
#        MEDIAMESH_BIN=path skips the build and uses that binary.
set -euo pipefail

STREAMS=${STREAMS:-4}
WINDOW=${WINDOW:-60}
WARMUP=${WARMUP:-10}
POLL_INTERVAL=${POLL_INTERVAL:-0.5}
JSON=""
while getopts "n:w:u:o:h" opt; do
  case $opt in
    n) STREAMS=$OPTARG ;;
    w) WINDOW=$OPTARG ;;
    u) WARMUP=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
HELPER="$BENCH_DIR/ingest_cpu.py"
JSON=${JSON:-$BENCH_DIR/results/ingest_cpu-$(date +%Y%m%d-%H%M%S).json}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}

log() { printf '[ingest_cpu] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- dependencies
need_install=0
command -v ffmpeg >/dev/null || need_install=1
command -v nginx >/dev/null || need_install=1
command -v python3 >/dev/null || need_install=1
dpkg -s libnginx-mod-rtmp >/dev/null 2>&1 || need_install=1
if [ $need_install = 1 ]; then
  log "installing nginx, libnginx-mod-rtmp, ffmpeg"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y nginx libnginx-mod-rtmp ffmpeg python3 >&2; then
    apt-get update >&2
    apt-get install -y nginx libnginx-mod-rtmp ffmpeg python3 >&2
  fi
fi
RTMP_MODULE=$(dpkg -L libnginx-mod-rtmp | grep -m1 '/ngx_rtmp_module\.so$' || true)
[ -n "$RTMP_MODULE" ] || RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$RTMP_MODULE" ] || { log "nginx rtmp module not found ($RTMP_MODULE)"; exit 1; }

# ---------------------------------------------------------------- build
if [ -n "${MEDIAMESH_BIN:-}" ]; then
  MEDIAMESH=$MEDIAMESH_BIN
  log "using $MEDIAMESH (MEDIAMESH_BIN set, not building)"
else
  log "building mediamesh (release) in $CARGO_TARGET_DIR"
  (cd "$REPO" && cargo build --release -p mediamesh >&2)
  MEDIAMESH="$CARGO_TARGET_DIR/release/mediamesh"
fi
[ -x "$MEDIAMESH" ] || { log "no binary at $MEDIAMESH"; exit 1; }
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  COMMIT="$COMMIT+dirty"
fi

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/mediamesh-bench.XXXXXX)
PIDS=()
NGINX_PID=""
cleanup() {
  local rc=$?
  set +e
  local ng_children=""
  if [ -n "$NGINX_PID" ]; then
    ng_children=$(ps -o pid= --ppid "$NGINX_PID" 2>/dev/null | tr '\n' ' ')
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$NGINX_PID" ]; then
    kill -QUIT "$NGINX_PID" 2>/dev/null
  fi
  sleep 1
  for p in "${PIDS[@]}" $NGINX_PID $ng_children; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- input
INPUT="$TMP/input.flv"
INPUT_DESC="30 s testsrc2 1280x720@30 H.264 veryfast 3 Mb/s, GOP 60 (2 s), AAC 128k 48 kHz, FLV; published with -re -stream_loop -1 -c copy"
log "encoding the input once ($INPUT)"
nice ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 30 -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 3M -maxrate 3M -bufsize 6M \
  -g 60 -keyint_min 60 -sc_threshold 0 \
  -c:a aac -b:a 128k -f flv "$INPUT"

# ---------------------------------------------------------------- ports
mapfile -t PORTS < <(python3 "$HELPER" freeports 4)
MM_HTTP=${PORTS[0]}; MM_RTMP=${PORTS[1]}; NG_HTTP=${PORTS[2]}; NG_RTMP=${PORTS[3]}
log "ports: mediamesh http $MM_HTTP rtmp $MM_RTMP; nginx http $NG_HTTP rtmp $NG_RTMP"

# ---------------------------------------------------------------- nginx-rtmp
mkdir -p "$TMP/nginx/hls" "$TMP/nginx/logs" "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<EOF
load_module $RTMP_MODULE;
# Root so the worker may write the HLS files into the private temp dir.
user root;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$NG_RTMP;
    chunk_size 4096;
    application live {
      live on;
      hls on;
      hls_path $TMP/nginx/hls;
      hls_fragment 2s;
      hls_playlist_length 60s;
    }
  }
}
http {
  access_log off;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NG_HTTP;
    location /hls/ {
      alias $TMP/nginx/hls/;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
      add_header Cache-Control no-cache;
    }
  }
}
EOF
nginx -t -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >&2
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
  -g 'daemon off;' >"$TMP/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!

# ---------------------------------------------------------------- mediamesh
mkdir -p "$TMP/mediamesh"
"$MEDIAMESH" origin --http "127.0.0.1:$MM_HTTP" --rtmp "127.0.0.1:$MM_RTMP" \
  --data "$TMP/mediamesh/data" >"$TMP/mediamesh/log" 2>&1 &
MM_PID=$!
PIDS+=("$MM_PID")

python3 "$HELPER" wait-http "http://127.0.0.1:$MM_HTTP/healthz" 15 ||
  { log "mediamesh did not come up:"; cat "$TMP/mediamesh/log" >&2; exit 1; }
python3 - "$NG_RTMP" <<'EOF' || { log "nginx did not come up:"; cat "$TMP/nginx/logs/"* >&2; exit 1; }
import socket, sys, time
for _ in range(75):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
kill -0 "$NGINX_PID" || { log "nginx exited"; cat "$TMP/nginx/logs/"* >&2; exit 1; }

# ---------------------------------------------------------------- publishers
mkdir -p "$TMP/pub"
PUB_PIDS=()
log "publishing $STREAMS stream(s) to each server"
for i in $(seq 0 $((STREAMS - 1))); do
  for target in "mm rtmp://127.0.0.1:$MM_RTMP/live/s$i" "ng rtmp://127.0.0.1:$NG_RTMP/live/s$i"; do
    set -- $target
    ffmpeg -hide_banner -nostdin -loglevel warning -re -stream_loop -1 -i "$INPUT" \
      -c copy -f flv "$2" >"$TMP/pub/$1-s$i.log" 2>&1 &
    PIDS+=("$!")
    PUB_PIDS+=("$!")
  done
done

log "warm-up ${WARMUP} s"
sleep "$WARMUP"
for p in "${PUB_PIDS[@]}"; do
  kill -0 "$p" 2>/dev/null || { log "a publisher exited early:"; tail -n 5 "$TMP"/pub/*.log >&2; exit 1; }
done

log "measuring for ${WINDOW} s"
rc=0
python3 "$HELPER" measure \
  --streams "$STREAMS" --window "$WINDOW" --warmup "$WARMUP" \
  --mm-pid "$MM_PID" --ng-pid "$NGINX_PID" \
  --mm-http "$MM_HTTP" --ng-http "$NG_HTTP" \
  --mm-log "$TMP/mediamesh/log" --ng-log "$TMP/nginx/logs/error.log" \
  --publisher-pids "$(IFS=,; echo "${PUB_PIDS[*]}")" \
  --poll-interval "$POLL_INTERVAL" \
  --input-desc "$INPUT_DESC" --commit "$COMMIT" --json "$JSON" || rc=$?

# ---------------------------------------------------------------- the SRT row
if [ "${SRT:-1}" = 1 ] && [ $rc = 0 ]; then
  log "SRT row: stopping the first phase"
  for p in "${PUB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$MM_PID" 2>/dev/null || true
  kill -QUIT "$NGINX_PID" 2>/dev/null || true
  sleep 2
  mapfile -t P2 < <(python3 "$HELPER" freeports 5)
  A_HTTP=${P2[0]}; A_RTMP=${P2[1]}; B_HTTP=${P2[2]}; B_RTMP=${P2[3]}; B_SRT=${P2[4]}
  mkdir -p "$TMP/mm-rtmp" "$TMP/mm-srt"
  "$MEDIAMESH" origin --http "127.0.0.1:$A_HTTP" --rtmp "127.0.0.1:$A_RTMP" \
    --data "$TMP/mm-rtmp/data" >"$TMP/mm-rtmp/log" 2>&1 &
  A_PID=$!; PIDS+=("$A_PID")
  "$MEDIAMESH" origin --http "127.0.0.1:$B_HTTP" --rtmp "127.0.0.1:$B_RTMP" \
    --srt "127.0.0.1:$B_SRT" --data "$TMP/mm-srt/data" >"$TMP/mm-srt/log" 2>&1 &
  B_PID=$!; PIDS+=("$B_PID")
  python3 "$HELPER" wait-http "http://127.0.0.1:$A_HTTP/healthz" 15 &&
    python3 "$HELPER" wait-http "http://127.0.0.1:$B_HTTP/healthz" 15 ||
    { log "an origin of the SRT row did not come up"; tail -n 20 "$TMP"/mm-*/log >&2; exit 1; }
  SRT_PUBS=()
  for i in $(seq 0 $((STREAMS - 1))); do
    ffmpeg -hide_banner -nostdin -loglevel warning -re -stream_loop -1 -i "$INPUT" \
      -c copy -f flv "rtmp://127.0.0.1:$A_RTMP/live/s$i" >"$TMP/pub/row-rtmp-s$i.log" 2>&1 &
    PIDS+=("$!"); SRT_PUBS+=("$!")
    ffmpeg -hide_banner -nostdin -loglevel warning -re -stream_loop -1 -i "$INPUT" \
      -c copy -f mpegts "srt://127.0.0.1:$B_SRT?streamid=live/s$i&latency=120000" \
      >"$TMP/pub/row-srt-s$i.log" 2>&1 &
    PIDS+=("$!"); SRT_PUBS+=("$!")
  done
  log "SRT row: warm-up ${WARMUP} s"
  sleep "$WARMUP"
  for p in "${SRT_PUBS[@]}"; do
    kill -0 "$p" 2>/dev/null || { log "a publisher of the SRT row exited early:"; tail -n 5 "$TMP"/pub/row-*.log >&2; exit 1; }
  done
  log "SRT row: measuring for ${WINDOW} s"
  python3 "$HELPER" pair --streams "$STREAMS" --window "$WINDOW" \
    --rtmp-pid "$A_PID" --srt-pid "$B_PID" --rtmp-http "$A_HTTP" --srt-http "$B_HTTP" \
    --json "$JSON" || rc=$?
fi

for f in "$TMP"/pub/*.log; do
  if grep -qiE 'error|broken pipe|connection refused' "$f"; then
    log "publisher $(basename "$f" .log) reported:"; grep -iE 'error|broken|refused' "$f" | head -n 5 >&2
  fi
done
exit $rc
