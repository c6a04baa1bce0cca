#!/usr/bin/env bash
# What one 1 KB cache hit costs the edge, counted rather than timed, so the figures
# hold on a shared, loaded machine: for each build given (and nginx proxy_cache with
# the same settings as bench/edge_cache.sh),
#   - instructions per request under callgrind (mediamesh builds only; valgrind runs
#     the threads one at a time, so this is the request path's user-space work),
#   - heap allocations per request (malloc/calloc/realloc/posix_memalign calls counted
#     by callgrind over the same requests),
#   - system calls per request (strace -c -f over N requests, by name),
#   - with perf (where `perf stat -e instructions true` works): user and kernel
#     instructions per request of the whole server, nginx too.
# Every figure is over exactly N requests (h2load -n N, HTTP/1.1 keep-alive, CONNS
# connections) after a warm-up, on 127.0.0.1. Run on demand, not in CI.
#
# Usage: bench/edge_hit_profile.sh BINARY [BINARY...]
#   env: N (20000), CONNS (16), PROTO (http | https | h2; default http), KEEP_TMP=1,
#        NGINX=0 skips nginx. Needs valgrind, strace, h2load (nghttp2-client), nginx.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,19p' "$0"; exit 2; }
N=${N:-20000}
CONNS=${CONNS:-16}
PROTO=${PROTO:-http}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
HELPER="$BENCH_DIR/edge_cache.py"
log() { printf '[hit_profile] %s\n' "$*" >&2; }

need=()
for c in valgrind strace h2load nginx openssl; do command -v $c >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing valgrind strace nghttp2-client nginx openssl"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y valgrind strace nghttp2-client nginx openssl >&2 ||
    { apt-get update >&2; apt-get install -y valgrind strace nghttp2-client nginx openssl >&2; }
fi
ulimit -n 65536 2>/dev/null || true

TMP=$(mktemp -d /tmp/edge-hit-profile.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ "${KEEP_TMP:-0}" = 1 ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t P < <(python3 "$HELPER" freeports 3)
ORIGIN=${P[0]}; NG=${P[1]}; MM=${P[2]}
python3 "$HELPER" origin --port "$ORIGIN" >"$TMP/origin.log" 2>&1 &
PIDS+=("$!")
python3 "$HELPER" wait-http "http://127.0.0.1:$ORIGIN/__origin_stats" 15

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
chmod 644 "$TMP/key.pem"
SCHEME=http; TLS_FLAGS=(); H2LOAD_PROTO=(--h1)
case $PROTO in
  http) ;;
  https) SCHEME=https; TLS_FLAGS=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem") ;;
  h2) SCHEME=https; TLS_FLAGS=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem"); H2LOAD_PROTO=() ;;
  *) log "PROTO must be http, https or h2"; exit 2 ;;
esac
URL_PATH=/obj/1k.m4s

# Exactly n requests on CONNS keep-alive connections; prints the h2load summary line.
load() {
  local port=$1 n=$2
  h2load "${H2LOAD_PROTO[@]}" -n "$n" -c "$CONNS" -m 1 -t 1 "$SCHEME://127.0.0.1:$port$URL_PATH" |
    awk '/^requests:/ {print}'
}

# Syscalls per request of the process tree of $1 over N requests to port $2.
syscalls() {
  local pid=$1 port=$2 out=$3
  local tids
  tids=$(for p in $pid $(ps -o pid= --ppid "$pid"); do ls /proc/$p/task; done | sed 's/^/-p /' | tr '\n' ' ')
  # shellcheck disable=SC2086
  strace -c -f -qq $tids -o "$out" &
  local st=$!
  sleep 1
  load "$port" "$N" >/dev/null
  kill -INT $st; wait $st 2>/dev/null || true
  python3 - "$out" "$N" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls = int(f[3])
        rows.append((calls, f[-1]))
n = int(sys.argv[2])
rows.sort(reverse=True)
print(f"syscalls/req {sum(c for c, _ in rows) / n:.2f}: " +
      ", ".join(f"{name} {c / n:.2f}" for c, name in rows if c / n >= 0.01))
EOF
}

perf_ok=0
if command -v perf >/dev/null && perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9]'; then
  perf_ok=1
fi

# perf: user and kernel instructions per request of pid list $1 (comma-separated).
perfstat() {
  local pids=$1 port=$2
  perf stat -x, -e instructions:u,instructions:k -p "$pids" -o "$TMP/perf.txt" &
  local pp=$!
  sleep 1
  load "$port" "$N" >/dev/null
  kill -INT $pp; wait $pp 2>/dev/null || true
  awk -F, -v n="$N" '/instructions/ {printf "%s/req %.0f  ", $3, $1 / n} END {print ""}' "$TMP/perf.txt"
}

report=()
if [ "${NGINX:-1}" = 1 ]; then
  mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp" "$TMP/nginx/cache"
  H2=""; [ "$PROTO" = h2 ] && H2="http2"
  SSL=""; [ "$SCHEME" = https ] && SSL="ssl"
  cat >"$TMP/nginx/nginx.conf" <<EOF
user root;
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=edge:64m max_size=512m inactive=1h use_temp_path=off;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$NG $SSL $H2 backlog=4096;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_prefer_server_ciphers on;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_valid 200 1h;
    }
  }
}
EOF
  nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" -g 'daemon off;' \
    >"$TMP/nginx/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  python3 "$HELPER" wait-http "$SCHEME://127.0.0.1:$NG/x" 30
  load "$NG" 2000 >/dev/null
  s=$(syscalls "$NGINX_PID" "$NG" "$TMP/strace-nginx.txt")
  line="nginx: $s"
  if [ $perf_ok = 1 ]; then
    workers=$(ps -o pid= --ppid "$NGINX_PID" | tr -d ' ' | paste -sd,)
    line="$line | perf $(perfstat "$workers" "$NG")"
  fi
  report+=("$line")
  kill -QUIT "$NGINX_PID"; sleep 1
fi

i=0
for BIN in "$@"; do
  i=$((i + 1))
  name="mediamesh[$i] $BIN"
  # Counted run under callgrind: instrumented (and counted) only for the N requests.
  RUST_LOG=info,access=off valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$TMP/cg.$i.out" "$BIN" edge --http "127.0.0.1:$MM" \
    --origin "http://127.0.0.1:$ORIGIN" --cache-mem 536870912 --max-connections-per-ip 100000 \
    "${TLS_FLAGS[@]}" >"$TMP/mm.$i.log" 2>&1 &
  VG=$!
  PIDS+=("$VG")
  python3 "$HELPER" wait-http "$SCHEME://127.0.0.1:$MM/x" 120
  load "$MM" 2000 >/dev/null
  callgrind_control -i on "$VG" >/dev/null
  got=$(load "$MM" "$N")
  callgrind_control -d "$VG" >/dev/null
  callgrind_control -i off "$VG" >/dev/null
  kill "$VG"; wait "$VG" 2>/dev/null || true
  cg=$(python3 - "$N" "$TMP"/cg.$i.out* <<'EOF'
import re, sys
n = int(sys.argv[1])
ir = 0
allocs = 0
names = {}
ALLOC = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"}
for path in sys.argv[2:]:
    callee = None
    for line in open(path, errors="replace"):
        # The explicit dump holds the N requests (the file written at exit only
        # what ran after instrumentation was switched off again).
        if line.startswith("totals:"):
            ir = max(ir, int(line.split()[1]))
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2).strip()
            callee = names.get(m.group(1)) if line.startswith("cfn=") else None
            continue
        if line.startswith("calls=") and callee in ALLOC:
            allocs += int(line.split("=")[1].split()[0])
print(f"instructions/req {ir / n:.0f}, allocations/req {allocs / n:.2f}")
EOF
)
  # Syscalls (and perf) on a plain run of the same build.
  RUST_LOG=info,access=off "$BIN" edge --http "127.0.0.1:$MM" --origin "http://127.0.0.1:$ORIGIN" \
    --cache-mem 536870912 --max-connections-per-ip 100000 "${TLS_FLAGS[@]}" >"$TMP/mm.$i.plain.log" 2>&1 &
  MP=$!
  PIDS+=("$MP")
  python3 "$HELPER" wait-http "$SCHEME://127.0.0.1:$MM/x" 30
  load "$MM" 2000 >/dev/null
  s=$(syscalls "$MP" "$MM" "$TMP/strace-mm.$i.txt")
  line="$name: $cg; $s"
  [ $perf_ok = 1 ] && line="$line | perf $(perfstat "$MP" "$MM")"
  report+=("$line")
  kill "$MP"; wait "$MP" 2>/dev/null || true
  log "$name: callgrind run answered: $got"
done

echo
echo "1 KB cache hit, $PROTO, $N requests on $CONNS connections (h2load -m1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${report[@]}"
