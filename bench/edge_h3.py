#!/usr/bin/env python3
"""HTTP/3 row of bench/edge_cache.sh (stdlib only): cached 1 KB hits on a mediamesh edge
with TLS and --http3, over HTTP/3 and over HTTPS/1.1, with the same client
(`h3load`, crates/service/examples/h3load.rs) and the same number of requests in
flight, in alternating runs; medians, CPU per request of the edge, and the CPU that
other jobs on the machine used during each run.

Ours only: Debian's nginx is built without HTTP/3 (no `http_v3_module` in `nginx -V`)
and Varnish has none; h2load and curl in Debian have no HTTP/3 either, hence our own
client. The HTTP/3 / HTTPS/1.1 ratio is what this row reports; wrk's plain-HTTP figure
of the main table comes from a different client and is not comparable run for run.

  edge_h3.py --port P --pid PID --h3load BIN --json FILE [--duration 10] [--repeats 3]
             [--conns 16] [--streams 6] [--threads 2] [--path /obj/1k.m4s]
  edge_h3.py report FILE     print the table of an earlier run again
"""

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[edge_h3] {msg}", file=sys.stderr, flush=True)


def read_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def tree_cpu(root):
    """CPU seconds (utime+stime) of root and all its live descendants."""
    stats = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            st = read_stat(int(p))
            if st:
                stats[int(p)] = st
    tree, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sum(stats[p][1] for p in tree if p in stats) / CLK_TCK


def system_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - (v[3] + v[4]), sum(v[:8])


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def get(port, path):
    """HTTPS GET over TCP (certificate not checked: loopback, self-signed)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=30) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, len(r.read())


def run_load(a, proto):
    """One h3load run; its JSON plus the edge's and the rest of the machine's CPU."""
    scheme_args = ["--h3"] if proto == "h3" else []
    conns = a.conns if proto == "h3" else a.conns * a.streams
    cmd = [a.h3load, *scheme_args, "--insecure", "--conns", str(conns), "--streams", str(a.streams),
           "--secs", str(a.duration), "--threads", str(a.threads), f"https://127.0.0.1:{a.port}{a.path}"]
    busy0, tot0 = system_busy()
    cpu0 = tree_cpu(a.pid)
    ru0 = os.times()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration + 60)
    cpu1 = tree_cpu(a.pid)
    ru1 = os.times()
    busy1, tot1 = system_busy()
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if p.returncode != 0 or not line.startswith("{"):
        raise RuntimeError(f"h3load failed ({p.returncode}): {p.stdout}\n{p.stderr}")
    r = json.loads(line)
    secs = r["secs"]
    ncpu = os.cpu_count() or 1
    wall_cores = (busy1 - busy0) / max(1, tot1 - tot0) * ncpu
    client_cpu = (ru1.children_user + ru1.children_system) - (ru0.children_user + ru0.children_system)
    cache_cpu = cpu1 - cpu0
    r.update({
        "cache_cpu_s": cache_cpu,
        "cache_cores": cache_cpu / secs,
        "client_cores": client_cpu / secs,
        "machine_busy_cores": wall_cores,
        "other_cores": max(0.0, wall_cores - cache_cpu / secs - client_cpu / secs),
        "cpu_us_per_req": cache_cpu / max(1, r["requests"]) * 1e6,
    })
    return r


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def measure(a):
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_start": loadavg(),
           "cpus": os.cpu_count(), "path": a.path,
           "params": {"duration": a.duration, "repeats": a.repeats, "conns": a.conns,
                      "streams": a.streams, "threads": a.threads},
           "client": "h3load (crates/service/examples/h3load.rs): HTTP/3 with --h3 "
                     f"({a.conns} connections x {a.streams} streams), else HTTPS/1.1 "
                     f"({a.conns * a.streams} connections, one request at a time each)",
           "runs": {"h3": [], "https1": []}}
    log(f"load average at start: {res['loadavg_start']}")
    for path_check in range(3):
        status, h, n = get(a.port, a.path)
        log(f"warm-up {path_check + 1}: {status} x-cache={h.get('x-cache')} alt-svc={h.get('alt-svc')} {n} B")
        res.setdefault("alt_svc", h.get("alt-svc"))
    order = ["h3", "https1"]
    for i in range(a.repeats):
        for proto in (order if i % 2 == 0 else order[::-1]):
            r = run_load(a, proto)
            res["runs"][proto].append(r)
            log(f"run {i + 1} {proto}: {r['req_per_s']:.0f} req/s, {r['errors']} errors, "
                f"edge {r['cache_cores']:.2f} cores ({r['cpu_us_per_req']:.1f} us/req), "
                f"client {r['client_cores']:.2f}, other jobs {r['other_cores']:.2f}")
    res["loadavg_end"] = loadavg()
    for proto in order:
        runs = res["runs"][proto]
        res[proto] = {k: med([r[k] for r in runs]) for k in
                      ("req_per_s", "cpu_us_per_req", "cache_cores", "client_cores", "other_cores",
                       "latency_ms_p50", "latency_ms_p99")}
        res[proto]["errors"] = sum(r["errors"] for r in runs)
    h3, h1 = res["h3"], res["https1"]
    res["ratios"] = {
        "h3/https1_req_per_s": h3["req_per_s"] / h1["req_per_s"] if h1["req_per_s"] else None,
        "h3/https1_cpu_per_req": (h3["cpu_us_per_req"] / h1["cpu_us_per_req"]
                                  if h1["cpu_us_per_req"] else None),
    }
    return res


def report(res):
    print()
    print(f"HTTP/3 row: cached {res['path']} on mediamesh edge (TLS, --http3), client h3load, "
          f"medians of {res['params']['repeats']} alternating runs of {res['params']['duration']} s")
    print(f"load average start {res['loadavg_start']}  end {res['loadavg_end']}")
    print(f"{'':31}{'req/s':>10}{'edge us/req':>13}{'edge cores':>12}{'client':>8}{'other jobs':>12}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'errors':>8}")
    for proto, label in (("h3", "HTTP/3 (ours)"), ("https1", "HTTPS/1.1 (ours, same client)")):
        m = res[proto]
        print(f"{label:31}{m['req_per_s']:>10.0f}{m['cpu_us_per_req']:>13.1f}{m['cache_cores']:>12.2f}"
              f"{m['client_cores']:>8.2f}{m['other_cores']:>12.2f}{m['latency_ms_p50']:>8.2f}"
              f"{m['latency_ms_p99']:>8.2f}{m['errors']:>8}")
    r = res["ratios"]
    f = lambda v: "n/a" if v is None else f"{v:.2f}x"
    print(f"HTTP/3 / HTTPS/1.1: req/s {f(r['h3/https1_req_per_s'])}, edge CPU per request "
          f"{f(r['h3/https1_cpu_per_req'])}  (no nginx/Varnish peer: Debian's have no HTTP/3)")
    print(f"Alt-Svc on the TCP answers: {res.get('alt_svc')}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "report":
        with open(sys.argv[2]) as f:
            report(json.load(f)["http3"])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--h3load", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--path", default="/obj/1k.m4s")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--streams", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--commit", default="unknown")
    a = ap.parse_args()
    res = measure(a)
    res["commit"] = a.commit
    report(res)
    # Into the run's JSON (made by the main measurement, or new when it was skipped).
    data = {}
    if os.path.exists(a.json):
        with open(a.json) as f:
            data = json.load(f)
    data["http3"] = res
    with open(a.json, "w") as f:
        json.dump(data, f, indent=2)
    log(f"wrote {a.json} (key http3)")
    bad = res["h3"]["errors"] + res["https1"]["errors"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
