#!/usr/bin/env python3
"""Helper of bench/edge_conns.sh (stdlib only): memory at N idle keep-alive connections.

  hold --port P --conns N --path PATH --pids PID[,PID...] --settle S --out FILE
      measures the memory of the server's processes (PIDs: mediamesh's one process,
      or nginx's master and workers), opens N HTTP/1.1 keep-alive connections one
      after the other, each making one GET of PATH and reading the whole answer, keeps
      them open and idle, waits S seconds, measures again, then closes them with RST
      (no TIME_WAIT left to exhaust the ephemeral ports of the next round). Writes a
      JSON object: rss_kib / pss_kib before and after (sums over the PIDs), statuses,
      how many connections stayed open until the end, the open time.
  report FILE...  the table of edge_conns.sh from the per-round JSON files.
"""

import argparse
import json
import os
import socket
import statistics
import struct
import sys
import time


def mem_kib(pids):
    """(VmRSS, Pss) summed over pids, KiB. Pss counts a page shared by k processes as
    1/k in each, so nginx's master and workers are not counted twice for shared pages."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def one_request(s, port, path):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return 0
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            return 0
        rest += chunk
    return status


def hold(a):
    pids = [int(p) for p in a.pids.split(",")]
    before = mem_kib(pids)
    socks, statuses = [], {}
    t0 = time.monotonic()
    for _ in range(a.conns):
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(30)
        s.connect(("127.0.0.1", a.port))
        st = one_request(s, a.port, a.path)
        statuses[st] = statuses.get(st, 0) + 1
        socks.append(s)
    opened_s = time.monotonic() - t0
    time.sleep(a.settle)
    after = mem_kib(pids)
    # Still open? A closed one reads EOF at once; an open idle one would block.
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            still_open += 1 if s.recv(1) else 0
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    res = {"conns": a.conns, "statuses": statuses, "still_open": still_open,
           "open_seconds": opened_s, "settle_seconds": a.settle,
           "rss_kib_before": before[0], "rss_kib_after": after[0],
           "pss_kib_before": before[1], "pss_kib_after": after[1],
           "rss_bytes_per_conn": (after[0] - before[0]) * 1024 / a.conns,
           "pss_bytes_per_conn": (after[1] - before[1]) * 1024 / a.conns,
           "loadavg": os.getloadavg()}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    print(f"[edge_conns] {a.name}: {statuses} still open {still_open}/{a.conns}; RSS "
          f"{before[0] / 1024:.1f} -> {after[0] / 1024:.1f} MiB "
          f"({res['rss_bytes_per_conn']:.0f} B/conn), PSS {before[1] / 1024:.1f} -> "
          f"{after[1] / 1024:.1f} MiB ({res['pss_bytes_per_conn']:.0f} B/conn); "
          f"load {res['loadavg'][0]:.2f}", file=sys.stderr, flush=True)


def report(a):
    rounds = []
    for path in a.files:
        with open(path) as f:
            rounds.append(json.load(f))
    by = {}
    for r in rounds:
        by.setdefault(r["name"], []).append(r)
    med = lambda xs: statistics.median(xs) if xs else None
    out = {"rounds": rounds, "servers": {}}
    for n, rs in by.items():
        out["servers"][n] = {
            "rss_mib_before": med([r["rss_kib_before"] / 1024 for r in rs]),
            "rss_mib_after": med([r["rss_kib_after"] / 1024 for r in rs]),
            "rss_bytes_per_conn": med([r["rss_bytes_per_conn"] for r in rs]),
            "pss_mib_after": med([r["pss_kib_after"] / 1024 for r in rs]),
            "pss_bytes_per_conn": med([r["pss_bytes_per_conn"] for r in rs]),
            "all_ok": all(r["statuses"] == {"200": r["conns"]} and r["still_open"] == r["conns"]
                          for r in rs),
        }
    S = out["servers"]
    if "mediamesh" in S and "nginx" in S:
        for k in ("rss_mib_after", "rss_bytes_per_conn", "pss_mib_after", "pss_bytes_per_conn"):
            a_, b_ = S["mediamesh"][k], S["nginx"][k]
            out.setdefault("ratios", {})[f"mediamesh/nginx {k}"] = a_ / b_ if b_ else None
    loads = [r["loadavg"][0] for r in rounds]
    out["loadavg_1min"] = {"min": min(loads), "max": max(loads)}
    out["meta"] = json.loads(a.meta) if a.meta else {}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
    n_conns = rounds[0]["conns"] if rounds else 0
    print()
    print(f"memory at {n_conns} idle keep-alive connections (each made one request), "
          f"median of {len(rounds) // max(1, len(by))} alternating rounds, fresh servers each round")
    print(f"{'server':12s}{'RSS before MiB':>16s}{'RSS after MiB':>15s}{'RSS B/conn':>12s}"
          f"{'PSS after MiB':>15s}{'PSS B/conn':>12s}{'all 200 + open':>16s}")
    for n, v in S.items():
        print(f"{n:12s}{v['rss_mib_before']:16.1f}{v['rss_mib_after']:15.1f}"
              f"{v['rss_bytes_per_conn']:12.0f}{v['pss_mib_after']:15.1f}"
              f"{v['pss_bytes_per_conn']:12.0f}{str(v['all_ok']):>16s}")
    for k, v in out.get("ratios", {}).items():
        print(f"  {k:40s} {'-' if v is None else f'{v:.2f}x'}")
    print(f"load average (1 min) during the rounds: {out['loadavg_1min']['min']:.2f}"
          f" .. {out['loadavg_1min']['max']:.2f} (2 cores shared with other jobs)")
    print(f"\nJSON: {a.json}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--name", required=True)
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--conns", type=int, default=10000)
    h.add_argument("--path", default="/obj/1k.m4s")
    h.add_argument("--pids", required=True)
    h.add_argument("--settle", type=float, default=3)
    h.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--json", required=True)
    r.add_argument("--meta", default="")
    r.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd == "hold":
        hold(a)
        with open(a.out) as f:
            d = json.load(f)
        d["name"] = a.name
        with open(a.out, "w") as f:
            json.dump(d, f, indent=2)
    else:
        report(a)


if __name__ == "__main__":
    main()
