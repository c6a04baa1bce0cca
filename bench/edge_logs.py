#!/usr/bin/env python3
"""Logs-on row of bench/edge_cache.sh (stdlib only; reuses edge_cache.py's wrk runner).

  measure --server NAME:PORT:PID ... --origin PORT --tmp DIR --json FILE [--log NAME=FILE ...]

1 KB cache hits with wrk on every server in turn (the order rotated each repeat, so
drifting load from other jobs hits all alike); per server the median req/s, CPU per
request, and the lines its access log gained (to check the log really was on). The
ratios: mediamesh (log on) against nginx (access_log on, default buffering and
buffer=64k), and each program's cost of its log (log on / log off). The JSON goes under
the key "logs_on" of FILE (added to what is there), the table to stdout.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edge_cache as ec  # noqa: E402

PATH = "/obj/1k.m4s"


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def measure(a):
    servers = []
    for spec in a.server:
        name, port, pid = spec.split(":")
        servers.append({"name": name, "port": int(port), "pid": int(pid)})
    logs = dict(x.split("=", 1) for x in a.log)
    lua = os.path.join(a.tmp, "report-logs.lua")
    with open(lua, "w") as f:
        f.write(ec.WRK_LUA)
    log = lambda *x: print("[edge_logs]", *x, file=sys.stderr, flush=True)
    for s in servers:
        for _ in range(3):
            st, h, n = ec.get(s["port"], PATH)
            if st != 200 or n != 1024:
                raise SystemExit(f"{s['name']}: GET {PATH} -> {st}, {n} bytes")
        log(f"{s['name']}: warm ({ec.cache_status(h)})")
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_start": ec.loadavg(),
           "params": {"wrk": f"-t{a.wrk_threads} -c{a.wrk_conns} -d{a.duration}s",
                      "repeats": a.repeats, "path": PATH}, "servers": {}}
    runs = {s["name"]: [] for s in servers}
    for rep in range(a.repeats):
        order = servers[rep % len(servers):] + servers[:rep % len(servers)]
        for s in order:
            lf = logs.get(s["name"])
            before = count_lines(lf) if lf else None
            r = ec.run_wrk(a, s["port"], PATH, s["pid"], lua)
            if lf:
                time.sleep(1.5)  # mediamesh flushes every second; nginx's buffer=64k on fill
                r["log_lines_added"] = count_lines(lf) - before
            r["loadavg"] = ec.loadavg()
            runs[s["name"]].append(r)
            log(f"rep {rep + 1}/{a.repeats} {s['name']:18s} {r['req_per_s']:9.0f} req/s  "
                f"errors {r['errors']}  server {r['cache_cores']:.2f} cores, "
                f"{r['cpu_us_per_req']:.1f} us/req, other jobs {r['other_cores']:.2f}, "
                f"load {r['loadavg'][0]:.2f}"
                + (f", log +{r['log_lines_added']} lines" if lf else ""))
            time.sleep(1)
    for s in servers:
        rs = runs[s["name"]]
        res["servers"][s["name"]] = {
            "req_per_s": ec.med([r["req_per_s"] for r in rs]),
            "best_req_per_s": max(r["req_per_s"] for r in rs),
            "cpu_us_per_req": ec.med([r["cpu_us_per_req"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "log_lines_per_request": (
                ec.med([r["log_lines_added"] / max(1, r["requests"]) for r in rs])
                if s["name"] in logs else None),
            "runs": rs,
        }
    S = res["servers"]
    ratio = lambda x, y: ec.ratio(S.get(x, {}).get("req_per_s"), S.get(y, {}).get("req_per_s"))
    cpu = lambda x, y: ec.ratio(S.get(x, {}).get("cpu_us_per_req"), S.get(y, {}).get("cpu_us_per_req"))
    res["ratios"] = {
        "mediamesh-log/nginx-log": ratio("mediamesh-log", "nginx-log"),
        "mediamesh-log/nginx-log-64k": ratio("mediamesh-log", "nginx-log-64k"),
        "mediamesh-log/mediamesh (cost of our log)": ratio("mediamesh-log", "mediamesh"),
        "nginx-log/nginx (cost of its log)": ratio("nginx-log", "nginx"),
        "nginx-log-64k/nginx": ratio("nginx-log-64k", "nginx"),
        "cpu_per_req mediamesh-log/nginx-log": cpu("mediamesh-log", "nginx-log"),
        "cpu_per_req mediamesh-log/nginx-log-64k": cpu("mediamesh-log", "nginx-log-64k"),
        "cpu_per_req mediamesh-log/mediamesh": cpu("mediamesh-log", "mediamesh"),
    }
    other = [r["other_cores"] for rs in runs.values() for r in rs]
    res["other_jobs_cores_median"] = statistics.median(other)
    res["other_jobs_cores_max"] = max(other)
    res["loadavg_end"] = ec.loadavg()
    out = {}
    if os.path.exists(a.json):
        with open(a.json) as f:
            out = json.load(f)
    out["logs_on"] = res
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
    report(res)


def report(res):
    f = lambda v, fmt: "-" if v is None else fmt.format(v)
    p = res["params"]
    print()
    print(f"logs-on row  {res['started']}: 1 KB hits, wrk {p['wrk']}, median of {p['repeats']} "
          f"alternating runs; load average {res['loadavg_start']} -> {res['loadavg_end']}")
    print(f"{'server':20s}{'req/s':>10s}{'best':>10s}{'us CPU/req':>12s}{'errors':>8s}{'log lines/req':>15s}")
    for n, v in res["servers"].items():
        print(f"{n:20s}{f(v['req_per_s'], '{:.0f}'):>10s}{f(v['best_req_per_s'], '{:.0f}'):>10s}"
              f"{f(v['cpu_us_per_req'], '{:.1f}'):>12s}{v['errors']:>8d}"
              f"{f(v['log_lines_per_request'], '{:.3f}'):>15s}")
    for k, v in res["ratios"].items():
        print(f"  {k:44s} {f(v, '{:.2f}')}x")
    print(f"CPU used by other jobs during these runs: median {res['other_jobs_cores_median']:.2f} "
          f"cores, max {res['other_jobs_cores_max']:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--server", action="append", required=True, help="name:port:pid")
    m.add_argument("--log", action="append", default=[], help="name=access log file")
    m.add_argument("--origin", type=int, required=True)
    m.add_argument("--tmp", required=True)
    m.add_argument("--json", required=True)
    m.add_argument("--duration", type=int, default=10)
    m.add_argument("--repeats", type=int, default=3)
    m.add_argument("--wrk-threads", type=int, default=2)
    m.add_argument("--wrk-conns", type=int, default=100)
    r = sub.add_parser("report")
    r.add_argument("json")
    a = ap.parse_args()
    if a.cmd == "measure":
        measure(a)
    else:
        with open(a.json) as fh:
            report(json.load(fh)["logs_on"])


if __name__ == "__main__":
    main()
