#!/usr/bin/env bash
# Edge cache benchmark: mediamesh edge vs nginx proxy_cache vs Varnish (Debian packages),
# side by side in front of the same counting origin, on the same cores, over loopback.
#
#   (a) req/s on a cached 1 KB object            (wrk, median of REPEATS runs)
#   (b) throughput on a cached 2 MB object        (wrk, median of REPEATS runs)
#   (c) thundering herd: HERD_CLIENTS clients ask at once for a brand-new 2 MB segment
#       (origin waits 200 ms before its first byte): upstream requests for it (exact,
#       counted by the origin) and time until the last client has its last byte.
#   (d) sweep: 1 KB hits at SWEEP_CONNS connections (16 64 256 1000), plain HTTP/1.1
#       (wrk; nginx, Varnish, mediamesh), TLS HTTP/1.1 (wrk https) and HTTP/2 over TLS
#       (h2load) (nginx and mediamesh, same certificate, TLS 1.3 AES-128-GCM, session
#       resumption on); (e) contention: the same 1 KB runs at CONTENTION_CONNS while a
#       busy loop pinned to core 1 takes that core. Load average and other jobs' CPU
#       (/proc/stat) before, during and after every row.
# Prints a table with the ratios mediamesh/nginx and mediamesh/varnish; writes JSON.
# Run on demand (not in CI). See bench/README.md.
#
# Usage: bench/edge_cache.sh [-d WRK_SECONDS] [-r REPEATS] [-c HERD_CLIENTS] [-o JSON]
#   env: DURATION (10), REPEATS (3), WRK_THREADS (2), WRK_CONNS (100), HERD_CLIENTS (1000),
#        HERD_REPEATS (3), ORIGIN_DELAY_MS (200), WORKERS (2; nginx worker_processes),
#        MM_LOG (RUST_LOG of mediamesh; default info,access=off = no access log, like nginx),
#        CARGO_TARGET_DIR (~/.cache/mediamesh-target), MEDIAMESH_BIN=path skips the build,
#        KEEP_TMP=1 keeps the temp dir (configs, logs, nginx cache),
#        LOGS (1: also the logs-on row, see its section below; 0: skip it; only: that row alone).
#        SWEEP (1; 0 skips (d) and (e)), SWEEP_CONNS ("16 64 256 1000"), SWEEP_DURATION
#        (DURATION), SWEEP_REPEATS (REPEATS), SWEEP_PROTOS ("http https h2"),
#        H2_STREAMS (1; h2load -m), CONTENTION_CONNS ("64"; "" skips (e)),
#        FAST=1: DURATION 4, REPEATS 3, HERD_REPEATS 1 (the whole run in ~12 minutes).
#   HTTP/3 row (see its block below): H3=0 skips it, H3_ONLY=1 runs only it, H3_CONNS,
#        H3_STREAMS, H3LOAD_BIN.
set -euo pipefail

# Fast mode (issue 17): every row still a median of 3 alternating runs, shorter runs.
if [ "${FAST:-0}" = 1 ]; then
  DURATION=${DURATION:-4}
  REPEATS=${REPEATS:-3}
  HERD_REPEATS=${HERD_REPEATS:-1}
fi

DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-100}
HERD_CLIENTS=${HERD_CLIENTS:-1000}
HERD_REPEATS=${HERD_REPEATS:-3}
ORIGIN_DELAY_MS=${ORIGIN_DELAY_MS:-200}
WORKERS=${WORKERS:-2}
MM_LOG=${MM_LOG:-info,access=off}
JSON=""
while getopts "d:r:c:o:h" opt; do
  case $opt in
    d) DURATION=$OPTARG ;;
    r) REPEATS=$OPTARG ;;
    c) HERD_CLIENTS=$OPTARG ;;
    o) JSON=$OPTARG ;;
    *) sed -n '2,31p' "$0"; exit 2 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
HELPER="$BENCH_DIR/edge_cache.py"
mkdir -p "$BENCH_DIR/results"
JSON=${JSON:-$BENCH_DIR/results/edge_cache-$(date +%Y%m%d-%H%M%S).json}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}

log() { printf '[edge_cache] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- dependencies
need_install=0
for c in nginx varnishd wrk python3 h2load openssl taskset; do command -v $c >/dev/null || need_install=1; done
if [ $need_install = 1 ]; then
  log "installing nginx, varnish, wrk, nghttp2-client (h2load), openssl"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y nginx varnish wrk python3 nghttp2-client openssl util-linux >&2; then
    apt-get update >&2
    apt-get install -y nginx varnish wrk python3 nghttp2-client openssl util-linux >&2
  fi
fi
# The Debian packages may start their own services; we never use or touch those.

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

# 1000 herd clients + upstream connections need more descriptors than the usual 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
NOFILE=$(ulimit -n)

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/edge-cache-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
NGINX_PID=""
VARNISH_PID=""
cleanup() {
  local rc=$?
  set +e
  local children=""
  for p in $NGINX_PID $VARNISH_PID; do
    children="$children $(ps -o pid= --ppid "$p" 2>/dev/null | tr '\n' ' ')"
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null
  [ -n "$VARNISH_PID" ] && kill -TERM "$VARNISH_PID" 2>/dev/null
  sleep 1
  for p in "${PIDS[@]}" $NGINX_PID $VARNISH_PID $children; do kill -KILL "$p" 2>/dev/null; done
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

# ---------------------------------------------------------------- ports
mapfile -t PORTS < <(python3 "$HELPER" freeports 4)
ORIGIN=${PORTS[0]}; NG=${PORTS[1]}; VA=${PORTS[2]}; MM=${PORTS[3]}
log "ports: origin $ORIGIN, nginx $NG, varnish $VA, mediamesh $MM"

# ---------------------------------------------------------------- TLS (sweep rows)
# One self-signed ECDSA P-256 certificate for nginx and mediamesh alike. Both are held to
# TLS 1.3 and prefer TLS_AES_128_GCM_SHA256 (the server's order wins: nginx
# ssl_prefer_server_ciphers, mediamesh's rustls config does the same), session
# resumption on (nginx: shared cache + tickets; mediamesh: rustls cache + tickets).
mapfile -t TLS_PORTS < <(python3 "$HELPER" freeports 2)
NGS=${TLS_PORTS[0]}; MMS=${TLS_PORTS[1]}
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>/dev/null
chmod 644 "$TMP/tls/key.pem"
NGINX_VER=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
# nginx >= 1.25.1 has "http2 on;", older ones "listen ... http2".
if printf '%s\n1.25.0\n' "$NGINX_VER" | sort -V -C; then H2_LISTEN=http2; H2_ON=""; else H2_LISTEN=""; H2_ON="http2 on;"; fi
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/tls.conf" <<EOF
  ssl_session_cache shared:SSL:10m;
  ssl_session_timeout 1h;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$NGS ssl $H2_LISTEN backlog=4096;
    $H2_ON
    ssl_certificate $TMP/tls/cert.pem;
    ssl_certificate_key $TMP/tls/key.pem;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_prefer_server_ciphers on;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
EOF
log "TLS ports: nginx $NGS, mediamesh $MMS (nginx $NGINX_VER)"

# ---------------------------------------------------------------- origin
python3 "$HELPER" origin --port "$ORIGIN" --delay-ms "$ORIGIN_DELAY_MS" >"$TMP/origin.log" 2>&1 &
PIDS+=("$!")
python3 "$HELPER" wait-http "http://127.0.0.1:$ORIGIN/__origin_stats" 15 ||
  { log "origin did not come up"; cat "$TMP/origin.log" >&2; exit 1; }

# ---------------------------------------------------------------- nginx proxy_cache
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp" "$TMP/nginx/cache"
cat >"$TMP/nginx/nginx.conf" <<EOF
user root;
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
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
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
  include $TMP/nginx/tls.conf;
}
EOF
nginx -t -q -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" >&2
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
  -g 'daemon off;' >"$TMP/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!

# ---------------------------------------------------------------- varnish
mkdir -p "$TMP/varnish"
cat >"$TMP/varnish/default.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN"; }
EOF
# Default VCL behaviour (TTL from Cache-Control, built-in request coalescing with the
# waiting list, streaming), default thread pools (2 pools); -j none: no privilege
# separation, so the worker can use the private working dir.
varnishd -F -j none -n "$TMP/varnish/work" -a "127.0.0.1:$VA" -T 127.0.0.1:0 \
  -f "$TMP/varnish/default.vcl" -s malloc,512m >"$TMP/varnish/log" 2>&1 &
VARNISH_PID=$!

# ---------------------------------------------------------------- mediamesh edge
# Access logs off everywhere: nginx has access_log off, varnish only logs to its shared
# memory ring; mediamesh's per-request access log (tracing target "access", written to
# stderr) is turned off with MM_LOG's default. MM_LOG=info measures it with the log on.
# Every client of the benchmark is 127.0.0.1, so the per-address cap is lifted (nginx
# and Varnish have none by default).
RUST_LOG=$MM_LOG "$MEDIAMESH" edge --http "127.0.0.1:$MM" --origin "http://127.0.0.1:$ORIGIN" \
  --cache-mem 536870912 --max-connections-per-ip 100000 >"$TMP/mediamesh.log" 2>&1 &
MM_PID=$!
PIDS+=("$MM_PID")

for x in "nginx $NG $TMP/nginx/logs/error.log" "varnish $VA $TMP/varnish/log" "mediamesh $MM $TMP/mediamesh.log"; do
  set -- $x
  python3 "$HELPER" wait-http "http://127.0.0.1:$2/not-an-object" 30 ||
    { log "$1 did not come up:"; cat "$3" >&2; exit 1; }
done

# ---------------------------------------------------------------- mediamesh edge, TLS
# A second edge process for the TLS rows (the same flags plus the certificate): one
# listener is either plain or TLS. nginx serves both from one server (two server blocks).
RUST_LOG=$MM_LOG "$MEDIAMESH" edge --http "127.0.0.1:$MMS" --origin "http://127.0.0.1:$ORIGIN" \
  --cache-mem 536870912 --max-connections-per-ip 100000 \
  --tls-cert "$TMP/tls/cert.pem" --tls-key "$TMP/tls/key.pem" >"$TMP/mediamesh-tls.log" 2>&1 &
MMS_PID=$!
PIDS+=("$MMS_PID")
for x in "nginx $NGS $TMP/nginx/logs/error.log" "mediamesh-tls $MMS $TMP/mediamesh-tls.log"; do
  set -- $x
  python3 "$HELPER" wait-http "https://127.0.0.1:$2/not-an-object" 30 ||
    { log "$1 did not come up:"; cat "$3" >&2; exit 1; }
done
# What each TLS server negotiates with an OpenSSL client (wrk's library) offering its
# default suites (AES-256-GCM first) and each ALPN.
TLS_INFO=$(for x in "nginx $NGS" "mediamesh $MMS"; do
  set -- $x
  for alpn in http/1.1 h2; do
    c=$(openssl s_client -connect "127.0.0.1:$2" -alpn $alpn -brief </dev/null 2>&1 |
      awk -F': ' '/Protocol version|Ciphersuite|ALPN protocol/ {printf "%s=%s;", $1, $2}')
    printf '%s %s %s\n' "$1" "$alpn" "$c"
  done
done)
log "TLS as negotiated:"$'\n'"$TLS_INFO"
SWEEP_ARGS=(--tls-cache "nginx:$NGS:$NGINX_PID" --tls-cache "mediamesh:$MMS:$MMS_PID"
  --sweep "${SWEEP:-1}" --sweep-conns "${SWEEP_CONNS:-16 64 256 1000}"
  --sweep-duration "${SWEEP_DURATION:-$DURATION}" --sweep-repeats "${SWEEP_REPEATS:-$REPEATS}"
  --sweep-protos "${SWEEP_PROTOS:-http https h2}" --h2-streams "${H2_STREAMS:-1}"
  --contention-conns "${CONTENTION_CONNS-64}" --tls-info "$TLS_INFO" --origin-pid "${PIDS[0]}")

VERSIONS=$(python3 - "$MEDIAMESH" <<'EOF'
import json, subprocess, sys
def out(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except Exception as e:
        return f"unknown ({e})"
print(json.dumps({"nginx": out(["nginx", "-v"]), "varnish": out(["varnishd", "-V"]),
                  "wrk": out(["wrk", "-v"]), "mediamesh": out([sys.argv[1], "--version"]),
                  "python": sys.version.split()[0]}))
EOF
)

status=0
if [ "${H3_ONLY:-0}" != 1 ] && [ "${LOGS:-1}" != only ]; then
log "running: wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s x $REPEATS per test and cache, then herds"
python3 "$HELPER" measure \
  --cache "nginx:$NG:$NGINX_PID" --cache "varnish:$VA:$VARNISH_PID" --cache "mediamesh:$MM:$MM_PID" \
  --origin "$ORIGIN" --tmp "$TMP" --json "$JSON" --commit "$COMMIT" --versions "$VERSIONS" --mm-log "$MM_LOG" \
  --duration "$DURATION" --repeats "$REPEATS" --wrk-threads "$WRK_THREADS" --wrk-conns "$WRK_CONNS" \
  --herd-clients "$HERD_CLIENTS" --herd-repeats "$HERD_REPEATS" --delay-ms "$ORIGIN_DELAY_MS" \
  "${SWEEP_ARGS[@]}" || status=$?
fi

# ================================================================ HTTP/3 row (begin)
# Cached 1 KB hits over HTTP/3 on a second mediamesh edge (TLS, --http3, same origin),
# against HTTPS/1.1 on the same edge with the same client (h3load, our quinn+h3 load
# generator: Debian's wrk, h2load and curl have no HTTP/3, nor does Debian's nginx, so
# the row is ours only). bench/edge_h3.py runs it and adds "http3" to the JSON.
#   env: H3=0 skips it, H3_ONLY=1 runs only it, H3_CONNS (16) x H3_STREAMS (6) requests in
#        flight (HTTPS/1.1: as many connections), H3LOAD_BIN=path skips its build.
if [ "${H3:-1}" = 1 ] && [ "${LOGS:-1}" != only ]; then
  if [ -n "${H3LOAD_BIN:-}" ]; then
    H3LOAD=$H3LOAD_BIN
  else
    log "building h3load (release example of crate service)"
    (cd "$REPO" && cargo build --release -p service --example h3load >&2)
    H3LOAD="$CARGO_TARGET_DIR/release/examples/h3load"
  fi
  mkdir -p "$TMP/h3"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$TMP/h3/key.pem" -out "$TMP/h3/cert.pem" 2>/dev/null
  MM3=$(python3 "$HELPER" freeports 1)
  RUST_LOG=$MM_LOG "$MEDIAMESH" edge --http "127.0.0.1:$MM3" --origin "http://127.0.0.1:$ORIGIN" \
    --cache-mem 536870912 --max-connections-per-ip 100000 \
    --tls-cert "$TMP/h3/cert.pem" --tls-key "$TMP/h3/key.pem" --http3 >"$TMP/mediamesh-h3.log" 2>&1 &
  MM3_PID=$!
  PIDS+=("$MM3_PID")
  for _ in $(seq 1 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$MM3/healthz" && break
    sleep 0.2
  done
  log "HTTP/3 row: h3load ${H3_CONNS:-16} x ${H3_STREAMS:-6} on https://127.0.0.1:$MM3 (UDP and TCP)"
  python3 "$BENCH_DIR/edge_h3.py" --port "$MM3" --pid "$MM3_PID" --h3load "$H3LOAD" --json "$JSON" \
    --duration "$DURATION" --repeats "$REPEATS" --conns "${H3_CONNS:-16}" --streams "${H3_STREAMS:-6}" \
    --threads "$WRK_THREADS" --commit "$COMMIT" || status=$?
  n=$(grep -ciwE 'warn|error|panic|panicked' "$TMP/mediamesh-h3.log" || true)
  [ "$n" = 0 ] || { log "mediamesh (HTTP/3 edge): $n warning/error line(s):"; grep -iwE 'warn|error|panic|panicked' "$TMP/mediamesh-h3.log" | head -5 >&2; }
fi
# ================================================================ HTTP/3 row (end)
# ================================================================ logs-on row (access logs)
# 1 KB hits with the access logs ON, against the same servers with them off (the ones
# above): a second nginx (same worker and cache settings, its own cache zone) with two
# server blocks, `access_log FILE` (nginx's default: one write() per request) and
# `access_log FILE combined buffer=64k`, both in nginx's default `combined` format;
# and a second mediamesh edge with `--access-log FILE` (JSON lines, its writer
# thread). All log files are in $TMP (the same disk). wrk alternates over the five
# servers (bench/edge_logs.py); LOGS=0 skips this row, LOGS=only runs it alone.
logs_on_row() {
  mkdir -p "$TMP/logs" "$TMP/nginx-logs/logs" "$TMP/nginx-logs/tmp" "$TMP/nginx-logs/cache"
  mapfile -t LP < <(python3 "$HELPER" freeports 3)
  local ngl=${LP[0]} ngl64=${LP[1]} mml=${LP[2]}
  cat >"$TMP/nginx-logs/nginx.conf" <<EOF
user root;
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
pid $TMP/nginx-logs/nginx.pid;
error_log $TMP/nginx-logs/logs/error.log warn;
events { worker_connections 8192; }
http {
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path $TMP/nginx-logs/tmp/body;
  proxy_temp_path $TMP/nginx-logs/tmp/proxy;
  fastcgi_temp_path $TMP/nginx-logs/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx-logs/tmp/uwsgi;
  scgi_temp_path $TMP/nginx-logs/tmp/scgi;
  proxy_cache_path $TMP/nginx-logs/cache levels=1:2 keys_zone=edgelogs:64m max_size=512m inactive=1h use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN;
    keepalive 64;
  }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_cache edgelogs;
  proxy_cache_valid 200 1h;
  proxy_cache_lock on;
  server {
    listen 127.0.0.1:$ngl backlog=4096;
    access_log $TMP/logs/nginx.log;
    location / { proxy_pass http://origin; add_header X-Cache-Status \$upstream_cache_status; }
  }
  server {
    listen 127.0.0.1:$ngl64 backlog=4096;
    access_log $TMP/logs/nginx-64k.log combined buffer=64k;
    location / { proxy_pass http://origin; add_header X-Cache-Status \$upstream_cache_status; }
  }
}
EOF
  nginx -t -q -p "$TMP/nginx-logs" -c "$TMP/nginx-logs/nginx.conf" -e "$TMP/nginx-logs/logs/error.log" >&2
  nginx -p "$TMP/nginx-logs" -c "$TMP/nginx-logs/nginx.conf" -e "$TMP/nginx-logs/logs/error.log" \
    -g 'daemon off;' >"$TMP/nginx-logs/logs/stdout.log" 2>&1 &
  NGINX_LOGS_PID=$!
  PIDS+=("$NGINX_LOGS_PID")
  RUST_LOG=$MM_LOG "$MEDIAMESH" edge --http "127.0.0.1:$mml" --origin "http://127.0.0.1:$ORIGIN" \
    --cache-mem 536870912 --max-connections-per-ip 100000 --access-log "$TMP/logs/mediamesh.log" \
    >"$TMP/mediamesh-logs.log" 2>&1 &
  local mm_logs_pid=$!
  PIDS+=("$mm_logs_pid")
  for p in $ngl $ngl64 $mml; do
    python3 "$HELPER" wait-http "http://127.0.0.1:$p/not-an-object" 30 ||
      { log "logs-on row: port $p did not come up"; return 1; }
  done
  log "logs-on row: wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s x $REPEATS on 1 KB hits, 5 servers alternating"
  python3 "$BENCH_DIR/edge_logs.py" measure \
    --server "mediamesh:$MM:$MM_PID" --server "mediamesh-log:$mml:$mm_logs_pid" \
    --server "nginx:$NG:$NGINX_PID" --server "nginx-log:$ngl:$NGINX_LOGS_PID" \
    --server "nginx-log-64k:$ngl64:$NGINX_LOGS_PID" \
    --log "mediamesh-log=$TMP/logs/mediamesh.log" --log "nginx-log=$TMP/logs/nginx.log" \
    --log "nginx-log-64k=$TMP/logs/nginx-64k.log" \
    --origin "$ORIGIN" --tmp "$TMP" --json "$JSON" \
    --duration "$DURATION" --repeats "$REPEATS" --wrk-threads "$WRK_THREADS" --wrk-conns "$WRK_CONNS"
}
if [ "${LOGS:-1}" != 0 ] && [ "${H3_ONLY:-0}" != 1 ]; then
  logs_on_row || status=$?
fi
# ================================================================ end of logs-on row

for x in "nginx $TMP/nginx/logs/error.log" "varnish $TMP/varnish/log" "mediamesh $TMP/mediamesh.log" \
  "mediamesh-tls $TMP/mediamesh-tls.log"; do
  set -- $x
  n=$(grep -ciwE 'warn|error|crit|alert|emerg|panic|panicked' "$2" || true)
  if [ "$n" != 0 ]; then
    log "$1: $n warning/error line(s) in its log, first ones:"
    grep -iwE 'warn|error|crit|alert|emerg|panic|panicked' "$2" | head -5 >&2
  fi
done
exit $status
