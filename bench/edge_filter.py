#!/usr/bin/env python3
"""Helper of bench/edge_filter.sh: wrk runs against edges with and without Proxy-Wasm
filters (cached 1 KB hits), the in-process per-request overhead, and the report.
Reuses the origin, wrk wrapper and CPU accounting of edge_cache.py."""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edge_cache as ec  # noqa: E402

PATH = "/obj/1k.m4s"


def log(*x):
    print("[edge_filter]", *x, file=sys.stderr, flush=True)


def measure(a):
    edges = []
    for spec in a.edge:
        name, port, pid = spec.split(":")
        edges.append({"name": name, "port": int(port), "pid": int(pid)})
    lua = os.path.join(a.tmp, "report.lua")
    with open(lua, "w") as f:
        f.write(ec.WRK_LUA)
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": a.commit,
           "cpus": os.cpu_count(), "loadavg_start": ec.loadavg(),
           "params": {"wrk": f"-t{a.wrk_threads} -c{a.wrk_conns} -d{a.duration}s",
                      "repeats": a.repeats, "path": PATH,
                      "filters": json.loads(a.filters)},
           "edges": {}}
    log(f"load average at start: {res['loadavg_start']}")
    for e in edges:
        statuses = []
        for _ in range(3):
            st, h, n = ec.get(e["port"], PATH)
            if st != 200 or n != 1024:
                raise SystemExit(f"{e['name']}: GET {PATH} -> {st}, {n} bytes")
            statuses.append(ec.cache_status(h))
        e["warm"] = statuses
        log(f"{e['name']}: warm, X-Cache on 3 GETs: {statuses}")
    runs = {e["name"]: [] for e in edges}
    for rep in range(a.repeats):
        # Alternate the order each repeat so drift in machine load hits all alike.
        order = edges if rep % 2 == 0 else list(reversed(edges))
        for e in order:
            r = ec.run_wrk(a, e["port"], PATH, e["pid"], lua)
            runs[e["name"]].append(r)
            log(f"rep {rep + 1} {e['name']}: {r['req_per_s']:.0f} req/s, "
                f"{r['cpu_us_per_req']:.1f} µs CPU/req, errors {r['errors']}, "
                f"other load {r['other_cores']:.2f} cores")
    base = None
    for e in edges:
        rs = runs[e["name"]]
        summary = {
            "req_per_s": ec.med([r["req_per_s"] for r in rs]),
            "cpu_us_per_req": ec.med([r["cpu_us_per_req"] for r in rs]),
            "latency_p50_us": ec.med([r.get("lat_p50_us") for r in rs]),
            "latency_p99_us": ec.med([r.get("lat_p99_us") for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "upstream_requests": sum(r["upstream_requests"] for r in rs),
            "other_cores_median": ec.med([r["other_cores"] for r in rs]),
            "runs": rs,
        }
        if base is None:
            base = summary
        else:
            summary["req_per_s_vs_no_filter"] = ec.ratio(summary["req_per_s"], base["req_per_s"])
            summary["cpu_us_per_req_added"] = (summary["cpu_us_per_req"] - base["cpu_us_per_req"])
        res["edges"][e["name"]] = summary
    res["overhead_in_process"] = [json.loads(l) for l in a.overhead]
    res["loadavg_end"] = ec.loadavg()
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2)
    report(res)
    log(f"wrote {a.json}")
    bad = [n for n, s in res["edges"].items() if s["errors"] or s["upstream_requests"]]
    return 1 if bad else 0


def report(res):
    print()
    print(f"cached 1 KB hits through the edge, wrk {res['params']['wrk']}, "
          f"median of {res['params']['repeats']}; {res['cpus']} CPUs, load average "
          f"{res['loadavg_start']} at start, {res['loadavg_end']} at end")
    print(f"{'edge':<22}{'req/s':>10}{'vs none':>9}{'CPU µs/req':>12}{'+µs/req':>9}"
          f"{'p50 µs':>9}{'p99 µs':>9}{'errors':>8}")
    for name, s in res["edges"].items():
        vs = s.get("req_per_s_vs_no_filter")
        add = s.get("cpu_us_per_req_added")
        p50 = s["latency_p50_us"]
        p99 = s["latency_p99_us"]
        print(f"{name:<22}{s['req_per_s']:>10.0f}{(f'{vs:.2f}' if vs else '-'):>9}"
              f"{s['cpu_us_per_req']:>12.1f}{(f'{add:+.1f}' if add is not None else '-'):>9}"
              f"{(f'{p50:.0f}' if p50 else '-'):>9}{(f'{p99:.0f}' if p99 else '-'):>9}"
              f"{s['errors']:>8}")
    print()
    print("per-request filter overhead in process (request + response pass, "
          "header conversion, instance checkout, callbacks, log/done/delete):")
    for o in res["overhead_in_process"]:
        print(f"  {os.path.basename(o['filter']):<22} p50 {o['p50_us']:.2f} µs  "
              f"p99 {o['p99_us']:.2f} µs  p99.9 {o['p999_us']:.2f} µs  "
              f"mean {o['mean_us']:.2f} µs  ({o['iterations']} requests)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", action="append", default=[], help="name:port:pid")
    ap.add_argument("--origin", type=int, required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--filters", default="{}")
    ap.add_argument("--overhead", action="append", default=[], help="JSON line")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-conns", type=int, default=50)
    a = ap.parse_args()
    sys.exit(measure(a))


if __name__ == "__main__":
    main()
