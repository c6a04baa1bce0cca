#!/usr/bin/env bash
# Simulator scale benchmark: `mediamesh sim` on a 10-minute live event under `hybrid`
# for VIEWERS distinct viewers, measuring wall time and peak RSS with /usr/bin/time -v.
# The issue's bar: 1,000,000 viewers in <= 60 s and <= 4 GB on a 2-core machine.
# Also prints the machine load before the run (the figure depends on a quiet CPU).
#
# Usage: bench/sim_scale.sh [-n VIEWERS] [-m MAX_DETAILED] [-p PRESET] [-o OUTDIR]
#   env: CARGO_TARGET_DIR (~/.cache/mediamesh-target), MEDIAMESH_BIN=path skips the build,
#        THREADS (0 = all cores), SEED (1), DURATION (600).
# MAX_DETAILED (default 50000, the simulator's own default; 0 = every viewer simulated one
# by one) caps the viewers simulated individually; above it whole swarms are sampled and
# scaled (see crates/sim/README.md).
set -euo pipefail

VIEWERS=1000000
MAX_DETAILED=50000
PRESET=hybrid
OUT=""
THREADS=${THREADS:-0}
SEED=${SEED:-1}
DURATION=${DURATION:-600}
while getopts "n:m:p:o:h" opt; do
  case $opt in
    n) VIEWERS=$OPTARG ;;
    m) MAX_DETAILED=$OPTARG ;;
    p) PRESET=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${MEDIAMESH_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mediamesh-target}
  (cd "$ROOT" && cargo build --release -q -p mediamesh)
  MEDIAMESH_BIN=$CARGO_TARGET_DIR/release/mediamesh
fi
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
OUT=${OUT:-$(mktemp -d /tmp/sim-scale.XXXXXX)}
mkdir -p "$OUT"

echo "machine: $(nproc) cores, load average before run: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v "$MEDIAMESH_BIN" sim --preset "$PRESET" --viewers "$VIEWERS" \
  --duration "$DURATION" --seed "$SEED" --threads "$THREADS" --max-detailed "$MAX_DETAILED" \
  --out "$OUT" --quiet 2> "$OUT/time.txt" > /dev/null || { cat "$OUT/time.txt" >&2; exit 1; }
echo "load average after run: $(cut -d' ' -f1-3 /proc/loadavg)"

wall=$(grep 'Elapsed (wall clock)' "$OUT/time.txt" | awk '{print $NF}')
rss_kb=$(grep 'Maximum resident set size' "$OUT/time.txt" | awk '{print $NF}')
user=$(grep 'User time' "$OUT/time.txt" | awk '{print $NF}')
sys=$(grep 'System time' "$OUT/time.txt" | awk '{print $NF}')
python3 - "$OUT/report.json" "$wall" "$rss_kb" "$user" "$sys" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall, rss_kb, user, sys_t = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
parts = [float(p) for p in wall.split(':')]
secs = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) > 2 else 0)
print(f"preset={r['preset']} viewers={r['viewers']} simulated_viewers={r['simulated_viewers']} "
      f"sample_fraction={r['sample_fraction']}")
print(f"wall_s={secs:.1f} user_s={user} sys_s={sys_t} peak_rss_mb={rss_kb/1024:.0f}")
print(f"p2p_share={r['p2p_share']} cost_usd={r['cost_usd']} startup_p50_s={r['startup_p50_s']} "
      f"stall_ratio={r['stall_ratio']} latency_to_live_p50_s={r['latency_to_live_p50_s']}")
ok = secs <= 60 and rss_kb <= 4 * 1024 * 1024
print("target (<= 60 s, <= 4 GB):", "met" if ok else "NOT met")
PY
echo "outputs in $OUT"
