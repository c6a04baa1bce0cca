#!/usr/bin/env bash
# WHEP viewers per core: the CPU one mediamesh origin spends per WebRTC viewer of one
# live stream. One RTMP publish (a pre-encoded 720p H.264 + AAC file, -re -c copy, so
# the publisher costs next to nothing; the origin transcodes AAC to Opus once for the
# stream), then for each viewer count in COUNTS a headless Chromium page holds that
# many WHEP sessions (bench/whep_viewers.mjs) while the origin's CPU time (utime+stime
# of the process, from /proc) is read over WINDOW seconds. CPU per viewer is the slope
# between the smallest and the largest count; viewers per core is its inverse. CPU time
# is what the process used, whatever else runs, but a busy machine still slows it a
# little (caches, frequency): the load average and the CPU other jobs used are printed
# with the figures.
#
#   bench/whep_viewers.sh
#   COUNTS="0 10 20 40" WINDOW=30 bench/whep_viewers.sh -o /tmp/whep_viewers.json
#
# Env: MEDIAMESH_BIN (default: cargo build --release), CARGO_TARGET_DIR, COUNTS
# ("0 8 16 32"), WINDOW (20 s). Needs ffmpeg, Chromium and web/node_modules (bash
# .ci/run installs them). Run on demand, not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
out="bench/results/whep_viewers-$(date -u +%Y%m%dT%H%M%SZ).json"
while getopts "o:" o; do case $o in o) out=$OPTARG ;; *) exit 2 ;; esac; done
counts=${COUNTS:-0 8 16 32}
window=${WINDOW:-20}
bin=${MEDIAMESH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -p mediamesh >&2
  bin="${CARGO_TARGET_DIR:-target}/release/mediamesh"
fi
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# CPU seconds of one process (all its threads) and of the whole machine (busy jiffies).
proc_cpu() { python3 -c 'import os,sys;f=open(f"/proc/{sys.argv[1]}/stat").read();r=f[f.rindex(")")+2:].split();print((int(r[11])+int(r[12]))/os.sysconf("SC_CLK_TCK"))' "$1"; }
machine_cpu() { python3 -c 'import os;v=[int(x) for x in open("/proc/stat").readline().split()[1:]];print((sum(v[:8])-v[3]-v[4])/os.sysconf("SC_CLK_TCK"))'; }

echo "[whep_viewers] encoding the input once" >&2
nice ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2500k -g 30 -keyint_min 30 -sc_threshold 0 \
  -bf 0 -c:a aac -b:a 128k -f flv "$tmp/input.flv"

http=$(free_port); rtmp=$(free_port)
# Sessions of a step linger until their idle timeout after the page closes, so the
# limit must hold all steps at once.
max=0; for n in $counts; do max=$((max + n)); done
RUST_LOG=warn "$bin" origin --http "127.0.0.1:$http" --rtmp "127.0.0.1:$rtmp" --data "$tmp/data" \
  --max-whep-sessions $((max + 8)) 2>"$tmp/origin.log" &
server=$!
pids+=("$server")
base="http://127.0.0.1:$http"
for _ in $(seq 1 40); do curl -sf -o /dev/null "$base/healthz" && break; sleep 0.25; done
ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$tmp/input.flv" -c copy \
  -f flv "rtmp://127.0.0.1:$rtmp/live/cam" >"$tmp/pub.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 60); do curl -sf -o /dev/null "$base/live/cam/index.m3u8" && break; sleep 0.5; done
sleep 3

rows=""
for n in $counts; do
  if [ "$n" -gt 0 ]; then
    node bench/whep_viewers.mjs "$base" cam "$n" $((window + 5)) >"$tmp/viewers-$n.out" 2>"$tmp/viewers-$n.err" &
    vpid=$!
    for _ in $(seq 1 120); do grep -q '^connected' "$tmp/viewers-$n.out" 2>/dev/null && break; sleep 0.5; done
    connected=$(sed -n 's/^connected //p' "$tmp/viewers-$n.out" | head -n1)
    sleep 3 # let the sessions settle (keyframe requests, bitrate)
  else
    vpid=""; connected=0
  fi
  load0=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(proc_cpu "$server"); m0=$(machine_cpu)
  sleep "$window"
  c1=$(proc_cpu "$server"); m1=$(machine_cpu)
  load1=$(cut -d' ' -f1 /proc/loadavg)
  viewer='null'
  if [ -n "$vpid" ]; then
    wait "$vpid" || true
    viewer=$(tail -n1 "$tmp/viewers-$n.out")
  fi
  row=$(python3 -c 'import json,sys
n,conn,c0,c1,m0,m1,w,l0,l1,v=sys.argv[1:]
cpu=float(c1)-float(c0); other=max(0.0,float(m1)-float(m0)-cpu)
print(json.dumps({"viewers":int(n),"connected":int(conn or 0),"origin_cpu_cores":round(cpu/float(w),4),
 "other_jobs_cpu_cores":round(other/float(w),2),"load_average":[float(l0),float(l1)],"page":json.loads(v)}))' \
    "$n" "${connected:-0}" "$c0" "$c1" "$m0" "$m1" "$window" "$load0" "$load1" "$viewer")
  echo "[whep_viewers] $row" >&2
  rows+="$row,"
done

python3 - "$out" "[${rows%,}]" "$("$bin" --version 2>/dev/null || echo mediamesh)" <<'EOF'
import json, sys
out, rows, server = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ok = [r for r in rows if r["viewers"] == 0 or (r["page"] and r["page"].get("ok") and not r["page"].get("starved"))]
lo = min(ok, key=lambda r: r["viewers"]) if ok else None
hi = max(ok, key=lambda r: r["viewers"]) if ok else None
per = None
if lo and hi and hi["viewers"] > lo["viewers"]:
    per = (hi["origin_cpu_cores"] - lo["origin_cpu_cores"]) / (hi["viewers"] - lo["viewers"])
doc = {
    "server": server, "stream": "720p30 H.264 2.5 Mb/s + AAC 128k (Opus to viewers)",
    "rows": rows,
    "cpu_cores_per_viewer": round(per, 5) if per else None,
    "viewers_per_core": round(1 / per) if per and per > 0 else None,
}
print(f"{'viewers':>8} {'connected':>9} {'origin cores':>13} {'other jobs':>11}  video kbit/s per viewer")
for r in rows:
    v = (r["page"] or {}).get("video_kbit_s_mean", "-")
    print(f"{r['viewers']:>8} {r['connected']:>9} {r['origin_cpu_cores']:>13.3f} {r['other_jobs_cpu_cores']:>11.2f}  {v}")
print(f"CPU per viewer: {doc['cpu_cores_per_viewer']} cores; viewers per core: {doc['viewers_per_core']}")
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
print(f"wrote {out}")
EOF
