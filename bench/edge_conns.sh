#!/usr/bin/env bash
# Memory at 10,000 idle keep-alive connections: mediamesh edge vs nginx proxy_cache,
# both in front of edge_cache.py's origin, on 127.0.0.1.
#
# Per round and server, a FRESH server is started, its 1 KB object cached, then
# CONNS HTTP/1.1 connections are opened one after the other; each makes one GET of the
# cached object, reads the answer and stays open, idle. Memory of the server's
# processes is read before and after (VmRSS summed over nginx's master and workers, as
# a process list shows it; and Pss, which counts shared pages once). Rounds alternate
# mediamesh and nginx; medians are reported with the ratio mediamesh/nginx.
# Run on demand (not in CI). See bench/README.md.
#
# Usage: bench/edge_conns.sh [-n CONNS] [-r ROUNDS] [-o JSON]
#   env: CONNS (10000), ROUNDS (3), WORKERS (2; nginx worker_processes, as edge_cache.sh),
#        SETTLE (3 s between the last connection and the second reading),
#        MM_FLAGS (extra flags of the edge), MM_LOG (its RUST_LOG, info,access=off), CARGO_TARGET_DIR, MEDIAMESH_BIN (skips the
#        build), KEEP_TMP=1.
set -euo pipefail

CONNS=${CONNS:-10000}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
SETTLE=${SETTLE:-3}
MM_FLAGS=${MM_FLAGS:-}
JSON=""
while getopts "n:r:o:h" opt; do
  case $opt in
    n) CONNS=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
HELPER="$BENCH_DIR/edge_cache.py"
mkdir -p "$BENCH_DIR/results"
JSON=${JSON:-$BENCH_DIR/results/edge_conns-$(date +%Y%m%d-%H%M%S).json}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}
log() { printf '[edge_conns] %s\n' "$*" >&2; }

for c in nginx python3; do
  command -v $c >/dev/null || { log "installing nginx"; DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2; }
done

if [ -n "${MEDIAMESH_BIN:-}" ]; then
  MEDIAMESH=$MEDIAMESH_BIN
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

# CONNS client sockets in this shell's children, CONNS server sockets in each server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" -lt $((CONNS + 1000)) ]; then
  log "ulimit -n is $NOFILE, too low for $CONNS connections"; exit 1
fi

TMP=$(mktemp -d /tmp/edge-conns-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t PORTS < <(python3 "$HELPER" freeports 3)
ORIGIN=${PORTS[0]}; NG=${PORTS[1]}; MM=${PORTS[2]}
python3 "$HELPER" origin --port "$ORIGIN" >"$TMP/origin.log" 2>&1 &
PIDS+=("$!")
python3 "$HELPER" wait-http "http://127.0.0.1:$ORIGIN/__origin_stats" 15 ||
  { log "origin did not come up"; exit 1; }

# nginx as in edge_cache.sh (worker_processes $WORKERS, proxy_cache, access_log off),
# with room for the connections (edge_cache.sh's 8192 per worker would do if the
# kernel spread them evenly; it need not) and a keep-alive time-out longer than a round.
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp" "$TMP/nginx/cache"
cat >"$TMP/nginx/nginx.conf" <<EOF
user root;
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections $((CONNS + 1024)); }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=edge:64m max_size=512m inactive=1h use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NG backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
    }
  }
}
EOF
nginx -t -q -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >&2

start_nginx() {
  rm -rf "$TMP/nginx/cache"/*
  nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
    -g 'daemon off;' >>"$TMP/nginx/logs/stdout.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  PORT=$NG
}
start_mediamesh() {
  # Access log off (as nginx's), the idle time-out past a round, the per-address cap
  # lifted (every client is 127.0.0.1), as in edge_cache.sh.
  RUST_LOG=${MM_LOG:-info,access=off} "$MEDIAMESH" edge --http "127.0.0.1:$MM" --origin "http://127.0.0.1:$ORIGIN" \
    --cache-mem 536870912 --max-connections-per-ip 100000 --idle-timeout 300 \
    --max-connections $((CONNS + 1024)) $MM_FLAGS >>"$TMP/mediamesh.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  PORT=$MM
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
server_pids() {
  # mediamesh: one process; nginx: the master and its workers.
  { echo "$SERVER_PID"; ps -o pid= --ppid "$SERVER_PID" 2>/dev/null; } | tr -d ' ' | paste -sd, -
}

FILES=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="mediamesh nginx"; else order="nginx mediamesh"; fi
  for name in $order; do
    "start_$name"
    python3 "$HELPER" wait-http "http://127.0.0.1:$PORT/obj/1k.m4s" 30 ||
      { log "$name did not come up"; exit 1; }
    # Cached now (the wait made the first GET); one more to be sure it is a hit.
    python3 "$HELPER" wait-http "http://127.0.0.1:$PORT/obj/1k.m4s" 5 >/dev/null
    sleep 1
    out="$TMP/round-$round-$name.json"
    python3 "$BENCH_DIR/edge_conns.py" hold --name "$name" --port "$PORT" --conns "$CONNS" \
      --pids "$(server_pids)" --settle "$SETTLE" --out "$out"
    FILES+=("$out")
    stop_server
    sleep 1
  done
done

META=$(python3 - "$MEDIAMESH" "$COMMIT" "$WORKERS" "$MM_FLAGS" <<'EOF'
import json, subprocess, sys
def out(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except Exception as e:
        return f"unknown ({e})"
print(json.dumps({"commit": sys.argv[2], "nginx": out(["nginx", "-v"]),
                  "mediamesh": out([sys.argv[1], "--version"]), "nginx_workers": int(sys.argv[3]),
                  "mediamesh_flags": sys.argv[4]}))
EOF
)
python3 "$BENCH_DIR/edge_conns.py" report --json "$JSON" --meta "$META" "${FILES[@]}"
