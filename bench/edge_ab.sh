#!/usr/bin/env bash
# A/B of two mediamesh builds' edge on 1 KB cache hits, with plain wrk, in alternating
# rounds against the same counting origin (bench/edge_cache.py): the check that a change
# did not make cache hits slower. Prints one line per round: which build, req/s, load.
#
# Usage: bench/edge_ab.sh OLD_BINARY NEW_BINARY
#   env: ROUNDS (5), CONNS (64), D (8 s per wrk run), A_FLAGS (extra edge flags of the
#        old build; default --max-connections-per-ip 100000, set A_FLAGS=" " for builds
#        that predate that flag), B_FLAGS (extra edge flags of the new build, e.g.
#        "--park-after 0" to compare a setting with one binary as A and B). Needs wrk, curl, python3. Run on demand, not in CI.
set -u
A=$1; B=$2; ROUNDS=${ROUNDS:-5}; CONNS=${CONNS:-64}; D=${D:-8}
TMP=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
H="$(dirname "$0")/edge_cache.py"
mapfile -t P < <(python3 $H freeports 3)
python3 $H origin --port ${P[0]} --delay-ms 200 >"$TMP/origin.log" 2>&1 & PIDS+=($!)
python3 $H wait-http http://127.0.0.1:${P[0]}/__origin_stats 15
RUST_LOG=info,access=off $A edge --http 127.0.0.1:${P[1]} --origin http://127.0.0.1:${P[0]} --cache-mem 536870912 ${A_FLAGS:---max-connections-per-ip 100000} >"$TMP/a.log" 2>&1 & PIDS+=($!)
RUST_LOG=info,access=off $B edge --http 127.0.0.1:${P[2]} --origin http://127.0.0.1:${P[0]} --cache-mem 536870912 --max-connections-per-ip 100000 ${B_FLAGS:-} >"$TMP/b.log" 2>&1 & PIDS+=($!)
python3 $H wait-http http://127.0.0.1:${P[1]}/x 30; python3 $H wait-http http://127.0.0.1:${P[2]}/x 30
curl -s -o /dev/null http://127.0.0.1:${P[1]}/obj/1k.m4s; curl -s -o /dev/null http://127.0.0.1:${P[2]}/obj/1k.m4s
for r in $(seq $ROUNDS); do
  for x in "A ${P[1]}" "B ${P[2]}"; do set -- $x
    rps=$(wrk -t2 -c$CONNS -d${D}s http://127.0.0.1:$2/obj/1k.m4s | awk '/Requests\/sec/ {print $2}')
    echo "round $r $1 $rps load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
