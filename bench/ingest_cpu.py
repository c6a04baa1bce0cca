#!/usr/bin/env python3
"""Measurement half of bench/ingest_cpu.sh (stdlib only).

Subcommands:
  freeports K          print K free TCP ports on 127.0.0.1, one per line
  wait-http URL SECS   wait until URL answers 200 (exit 1 on timeout)
  measure ...          the measurement window: CPU time and RSS of both servers from
                       /proc, playlist polling (segments produced), an LL-HLS
                       blocking-reload client on one mediamesh stream (part
                       inter-arrival sanity check), mediamesh's
                       mediamesh_part_publish_delay_seconds metric; prints the report
                       and writes it as JSON.
  pair ...             the SRT row: CPU time and RSS of two mediamesh origins side by
                       side over one window, one taking the streams over RTMP and one
                       over SRT (same input, -c copy), and the segments each produced;
                       adds the row to the JSON of `measure`.

CPU time is read as utime+stime (clock ticks) from /proc/PID/stat of every process of
each server, plus the master's cutime+cstime (so a reaped nginx worker's CPU is not
lost). CPU time, unlike wall time, is what a process consumed regardless of how busy
the rest of the machine is (up to cache/frequency effects), so the ratio of the two
servers measured side by side over the same window is robust to load from other jobs.
"""

import argparse
import http.client
import json
import math
import os
import re
import socket
import statistics
import sys
import threading
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---------------------------------------------------------------- /proc helpers


def read_stat(pid):
    """(ppid, utime+stime, cutime+cstime, rss_kb) in ticks / KiB, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] = state (field 3), rest[1] = ppid, rest[11..14] = utime stime cutime cstime,
    # rest[21] = rss (pages, field 24)
    ppid = int(rest[1])
    own = int(rest[11]) + int(rest[12])
    children = int(rest[13]) + int(rest[14])
    rss_kb = int(rest[21]) * PAGE_KB
    return ppid, own, children, rss_kb


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root):
    """root and all its live descendants."""
    parent = {}
    for pid in all_pids():
        st = read_stat(pid)
        if st:
            parent[pid] = st[0]
    out = [root]
    frontier = [root]
    while frontier:
        nxt = [p for p, pp in parent.items() if pp in frontier and p not in out]
        out.extend(nxt)
        frontier = nxt
    return out


def cpu_sample(root):
    """Total CPU seconds of the process tree under root (live processes plus what the
    root has reaped), and summed RSS in KiB, and the pids."""
    ticks = 0
    rss = 0
    pids = descendants(root)
    for pid in pids:
        st = read_stat(pid)
        if not st:
            continue
        ticks += st[1]
        rss += st[3]
        if pid == root:
            ticks += st[2]
    return ticks / CLK_TCK, rss, pids


class SchedTracker:
    """Nanosecond-resolution CPU time of a process tree from /proc/PID/task/TID/schedstat
    (time on CPU per thread). Threads first seen after the first sample count from 0;
    CPU of threads that exit between samples after their last sample is lost (small)."""

    def __init__(self):
        self.base = {}
        self.last = {}
        self.first_sample = True
        self.available = os.path.exists("/proc/self/schedstat")

    def sample(self, pids):
        if not self.available:
            return
        for pid in pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        ns = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                key = (pid, tid)
                if key not in self.base:
                    self.base[key] = ns if self.first_sample else 0
                self.last[key] = ns
        self.first_sample = False

    def seconds(self):
        if not self.available:
            return None
        return sum(self.last[k] - self.base[k] for k in self.last) / 1e9


def system_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


# ---------------------------------------------------------------- HTTP helpers


class Http:
    """One keep-alive HTTP/1.1 connection that reconnects on failure."""

    def __init__(self, host, port, timeout=10):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def get(self, path, timeout=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        self.host, self.port, timeout=timeout or self.timeout
                    )
                elif timeout:
                    self.conn.timeout = timeout
                    if self.conn.sock:
                        self.conn.sock.settimeout(timeout)
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                return r.status, body.decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                try:
                    if self.conn:
                        self.conn.close()
                except OSError:
                    pass
                self.conn = None
                if attempt == 1:
                    return None, ""
        return None, ""


def parse_playlist(text):
    """Minimal media-playlist parse. Returns (media sequence, segment URIs in order,
    parts) where parts is a list of (segment number, index in segment, URI) for every
    EXT-X-PART, the segment number being the one the part belongs to (the next
    EXTINF's, or the open segment after the last EXTINF)."""
    msn = 0
    segs = []
    parts = []
    idx = 0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            msn = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PART:"):
            m = re.search(r'URI="([^"]*)"', line)
            parts.append((msn + len(segs), idx, m.group(1) if m else ""))
            idx += 1
        elif line and not line.startswith("#"):
            segs.append(line)
            idx = 0
    return msn, segs, parts


# ---------------------------------------------------------------- pollers


class Poller(threading.Thread):
    """Polls the media playlists of one server every `interval` seconds and records
    the distinct segment (and part) URIs it sees."""

    def __init__(self, name, port, paths, interval, stop):
        super().__init__(daemon=True)
        self.name, self.port, self.paths, self.interval, self.stop = (
            name,
            port,
            paths,
            interval,
            stop,
        )
        self.segs = {p: set() for p in paths}
        self.parts = {p: set() for p in paths}
        self.first = {p: None for p in paths}
        self.errors = {p: 0 for p in paths}
        self.polls = 0
        self.last_status = {p: None for p in paths}

    def run(self):
        c = Http("127.0.0.1", self.port, timeout=5)
        while not self.stop.is_set():
            t0 = time.monotonic()
            for p in self.paths:
                status, body = c.get(p)
                self.polls += 1
                self.last_status[p] = status
                if status != 200:
                    self.errors[p] += 1
                    continue
                _, segs, parts = parse_playlist(body)
                if self.first[p] is None:
                    self.first[p] = set(segs)
                self.segs[p].update(segs)
                self.parts[p].update(u for _, _, u in parts)
            dt = time.monotonic() - t0
            self.stop.wait(max(0.0, self.interval - dt))

    def new_segments(self, p):
        if self.first[p] is None:
            return 0
        return len(self.segs[p] - self.first[p])


class LLHLSClient(threading.Thread):
    """Follows one mediamesh stream with LL-HLS blocking playlist reloads, as hls.js
    does: after each response, ask for the next part (_HLS_msn=M&_HLS_part=P) and
    record the wall-clock time each response arrived."""

    def __init__(self, port, path, stop):
        super().__init__(daemon=True)
        self.port, self.path, self.stop = port, path, stop
        self.events = []  # (t_arrival, msn, part_index) for responses that advanced
        self.errors = 0
        self.requests = 0
        self.skipped = 0  # responses that advanced by more than one part

    def run(self):
        c = Http("127.0.0.1", self.port, timeout=10)
        status, body = None, ""
        newest = None
        while not self.stop.is_set():
            if status != 200:
                if status is not None:
                    self.errors += 1
                time.sleep(0.2)
                status, body = c.get(self.path)
                continue
            t = time.time()
            msn, segs, parts = parse_playlist(body)
            if not parts:
                time.sleep(0.2)
                status, body = c.get(self.path)
                continue
            seg, idx, _ = parts[-1]
            if newest is not None and (seg, idx) != newest:
                self.events.append((t, (seg, idx)))
            newest = (seg, idx)
            # The part after the newest one: next index in the same segment, or the
            # first part of the next segment when that segment is already complete.
            if seg < msn + len(segs):
                want = (seg + 1, 0)
            else:
                want = (seg, idx + 1)
            q = f"{self.path}?_HLS_msn={want[0]}&_HLS_part={want[1]}"
            self.requests += 1
            status, body = c.get(q, timeout=10)


def distribution(xs):
    if not xs:
        return None
    s = sorted(xs)

    def q(p):
        k = (len(s) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    return {
        "n": len(s),
        "mean": statistics.fmean(s),
        "stdev": statistics.pstdev(s),
        "min": s[0],
        "p50": q(0.5),
        "p99": q(0.99),
        "max": s[-1],
    }


# ---------------------------------------------------------------- metrics


METRIC = "mediamesh_part_publish_delay_seconds"


def parse_metric(text):
    """Parses METRIC from Prometheus text in either histogram or summary format.
    Returns {'sum','count','buckets':{le:count},'quantiles':{q:value}} aggregated over
    label sets, or None if absent."""
    out = {"sum": 0.0, "count": 0.0, "buckets": {}, "quantiles": {}, "found": False}
    qvals = {}
    line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
    for line in text.splitlines():
        if not line.startswith(METRIC):
            continue
        m = line_re.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = float(value)
        except ValueError:
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if name == METRIC + "_sum":
            out["sum"] += v
            out["found"] = True
        elif name == METRIC + "_count":
            out["count"] += v
            out["found"] = True
        elif name == METRIC + "_bucket" and "le" in lab:
            le = float("inf") if lab["le"] in ("+Inf", "Inf") else float(lab["le"])
            out["buckets"][le] = out["buckets"].get(le, 0.0) + v
            out["found"] = True
        elif name == METRIC and "quantile" in lab:
            qvals.setdefault(float(lab["quantile"]), []).append(v)
            out["found"] = True
    # Several label sets: a quantile of the union is not derivable; report the worst.
    out["quantiles"] = {q: max(vs) for q, vs in qvals.items()}
    return out if out["found"] else None


def bucket_quantile(buckets, q):
    """Prometheus-style histogram_quantile over cumulative buckets {le: count}."""
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    total = items[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in items:
        if c >= rank:
            if math.isinf(le):
                return prev_le  # above the highest finite bucket
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return items[-1][0]


def part_delay(before, after):
    """Figures for the measurement window from two scrapes of /metrics."""
    if after is None:
        return None
    res = {"format": "histogram" if after["buckets"] else "summary"}
    b = before or {"sum": 0.0, "count": 0.0, "buckets": {}}
    d_count = after["count"] - b["count"]
    d_sum = after["sum"] - b["sum"]
    res["window_count"] = d_count
    res["window_mean_s"] = d_sum / d_count if d_count > 0 else None
    res["lifetime_count"] = after["count"]
    res["lifetime_mean_s"] = after["sum"] / after["count"] if after["count"] else None
    if after["buckets"]:
        wb = {le: c - b["buckets"].get(le, 0.0) for le, c in after["buckets"].items()}
        res["window_p50_s"] = bucket_quantile(wb, 0.50)
        res["window_p99_s"] = bucket_quantile(wb, 0.99)
        res["p99_s"] = res["window_p99_s"]
        res["p99_source"] = "buckets (window)"
    if after["quantiles"]:
        res["quantiles_s"] = {str(q): v for q, v in sorted(after["quantiles"].items())}
        if 0.99 in after["quantiles"]:
            res.setdefault("p99_s", after["quantiles"][0.99])
            res.setdefault("p99_source", "summary quantile (exporter's rolling window)")
        if 1.0 in after["quantiles"]:
            res["max_s"] = after["quantiles"][1.0]
    return res


def scrape(port):
    status, body = Http("127.0.0.1", port, timeout=5).get("/metrics")
    if status != 200:
        return None, None
    return parse_metric(body), body


# ---------------------------------------------------------------- measure


def log_problems(path, pattern, limit=15):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0, []
    rx = re.compile(pattern)
    hits = [l for l in lines if rx.search(l)]
    return len(hits), hits[:limit]


def measure(a):
    n = a.streams
    mm_paths = [f"/live/s{i}/src/index.m3u8" for i in range(n)]
    ng_paths = [f"/hls/s{i}.m3u8" for i in range(n)]

    # Both servers must be producing before the window opens.
    deadline = time.monotonic() + 30
    mm_http, ng_http = Http("127.0.0.1", a.mm_http), Http("127.0.0.1", a.ng_http)
    while True:
        ok_mm = all(mm_http.get(p)[0] == 200 for p in mm_paths)
        ok_ng = all(ng_http.get(p)[0] == 200 for p in ng_paths)
        if ok_mm and ok_ng:
            break
        if time.monotonic() > deadline:
            print(
                f"WARNING: playlists not all available after warm-up "
                f"(mediamesh ok={ok_mm}, nginx ok={ok_ng}); measuring anyway",
                file=sys.stderr,
            )
            break
        time.sleep(0.5)

    stop = threading.Event()
    pollers = {
        "mediamesh": Poller("mediamesh", a.mm_http, mm_paths, a.poll_interval, stop),
        "nginx-rtmp": Poller("nginx-rtmp", a.ng_http, ng_paths, a.poll_interval, stop),
    }
    ll = LLHLSClient(a.mm_http, mm_paths[0], stop)
    for t in list(pollers.values()) + [ll]:
        t.start()

    metric_before, _ = scrape(a.mm_http)
    roots = {"mediamesh": a.mm_pid, "nginx-rtmp": a.ng_pid}
    pub_pids = [int(p) for p in a.publisher_pids.split(",") if p]

    def pub_cpu():
        tot = 0
        for p in pub_pids:
            st = read_stat(p)
            if st:
                tot += st[1]
        return tot / CLK_TCK

    sched = {name: SchedTracker() for name in roots}
    samples = []  # (t, {server: cpu_s}, {server: rss_kb}, sys_busy, sys_total, pub_cpu)
    procs = {}
    t_start = time.monotonic()
    end = t_start + a.window
    while True:
        now = time.monotonic()
        cpu, rss = {}, {}
        for name, root in roots.items():
            c, r, pids = cpu_sample(root)
            cpu[name], rss[name] = c, r
            procs[name] = pids
            sched[name].sample(pids)
        busy, total = system_cpu()
        samples.append((now, cpu, rss, busy, total, pub_cpu()))
        if now >= end:
            break
        time.sleep(min(a.sample_interval, max(0.0, end - now)))
    stop.set()
    metric_after, metric_text = scrape(a.mm_http)
    for t in list(pollers.values()) + [ll]:
        t.join(timeout=12)

    first, last = samples[0], samples[-1]
    elapsed = last[0] - first[0]
    minutes = elapsed / 60.0
    res = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "cores": os.cpu_count(),
        "streams": n,
        "window_s": round(elapsed, 2),
        "warmup_s": a.warmup,
        "input": a.input_desc,
        "mediamesh_commit": a.commit,
        "playlist_poll_interval_s": a.poll_interval,
        "servers": {},
    }
    for name in roots:
        cpu_s = last[1][name] - first[1][name]
        rss_vals = [s[2][name] for s in samples]
        p = pollers[name]
        paths = p.paths
        new_segs = {path: p.new_segments(path) for path in paths}
        res["servers"][name] = {
            "cpu_s": round(cpu_s, 3),
            "cpu_s_per_stream_per_min": round(cpu_s / n / minutes, 4),
            "cpu_pct_of_one_core": round(100.0 * cpu_s / elapsed, 2),
            "cpu_s_schedstat": (
                round(sched[name].seconds(), 4) if sched[name].available else None
            ),
            "rss_mb_mean": round(statistics.fmean(rss_vals) / 1024, 1),
            "rss_mb_max": round(max(rss_vals) / 1024, 1),
            "processes": len(procs[name]),
            "segments_new_in_window": new_segs,
            "segments_new_total": sum(new_segs.values()),
            "playlist_polls": p.polls,
            "playlist_errors": p.errors,
        }
        if name == "mediamesh":
            res["servers"][name]["parts_seen"] = {
                path: len(p.parts[path]) for path in paths
            }
    mm = res["servers"]["mediamesh"]
    ng = res["servers"]["nginx-rtmp"]
    res["cpu_ratio_mediamesh_over_nginx"] = (
        round(mm["cpu_s"] / ng["cpu_s"], 4) if ng["cpu_s"] > 0 else None
    )
    res["cpu_ratio_target"] = 0.5
    res["cpu_ratio_schedstat"] = (
        round(mm["cpu_s_schedstat"] / ng["cpu_s_schedstat"], 4)
        if mm["cpu_s_schedstat"] is not None and ng["cpu_s_schedstat"]
        else None
    )

    # Ratio over consecutive slices of the window: how stable the figure is.
    slice_s = a.slice
    ratios = []
    i0 = 0
    for i in range(1, len(samples)):
        if samples[i][0] - samples[i0][0] >= slice_s - a.sample_interval / 2:
            dm = samples[i][1]["mediamesh"] - samples[i0][1]["mediamesh"]
            dn = samples[i][1]["nginx-rtmp"] - samples[i0][1]["nginx-rtmp"]
            if dn > 0:
                ratios.append(dm / dn)
            i0 = i
    res["cpu_ratio_per_slice"] = {
        "slice_s": slice_s,
        "values": [round(r, 3) for r in ratios],
        "min": round(min(ratios), 3) if ratios else None,
        "max": round(max(ratios), 3) if ratios else None,
    }
    busy = last[3] - first[3]
    total = last[4] - first[4]
    res["machine_busy_pct"] = round(100.0 * busy / total, 1) if total else None
    res["publishers_cpu_s"] = round(last[5] - first[5], 3)

    # Part delay, from mediamesh's own metric.
    pd = part_delay(metric_before, metric_after)
    res["part_delay_metric"] = pd
    res["part_delay_target_s"] = 0.050

    # Sanity check: inter-arrival of consecutive parts seen by a blocking-reload client.
    ev = ll.events
    gaps = []
    for (t0, k0), (t1, k1) in zip(ev, ev[1:]):
        consecutive = (k1[0] == k0[0] and k1[1] == k0[1] + 1) or (
            k1[0] == k0[0] + 1 and k1[1] == 0
        )
        if consecutive:
            gaps.append(t1 - t0)
        else:
            ll.skipped += 1
    res["llhls_client"] = {
        "stream": mm_paths[0],
        "requests": ll.requests,
        "responses_advanced": len(ev),
        "non_consecutive": ll.skipped,
        "errors": ll.errors,
        "part_interarrival_s": {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in (distribution(gaps) or {}).items()
        },
    }

    # Logs.
    c, lines = log_problems(a.mm_log, r"\b(WARN|ERROR)\b")
    res["mediamesh_log"] = {"warn_error_lines": c, "excerpt": lines}
    c, lines = log_problems(a.ng_log, r"\[(warn|error|crit|alert|emerg)\]")
    res["nginx_log"] = {"warn_error_lines": c, "excerpt": lines}

    ok = all(v > 0 for v in mm["segments_new_in_window"].values()) and all(
        v > 0 for v in ng["segments_new_in_window"].values()
    )
    res["both_producing"] = ok

    report(res)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2, default=str)
        f.write("\n")
    print(f"\nJSON written to {a.json}")
    return 0 if ok else 1


def fmt_ms(v):
    return "n/a" if v is None else f"{v * 1000:.1f} ms"


def report(r):
    mm, ng = r["servers"]["mediamesh"], r["servers"]["nginx-rtmp"]
    W = 34
    print()
    print("=" * 72)
    print(
        f"ingest CPU benchmark: {r['streams']} RTMP stream(s) per server, "
        f"window {r['window_s']:.1f} s after {r['warmup_s']} s warm-up"
    )
    print(f"input: {r['input']}")
    print(f"mediamesh commit: {r['mediamesh_commit']}")
    print(
        f"while measuring: each media playlist polled every {r['playlist_poll_interval_s']} s "
        f"on both servers, plus one LL-HLS blocking-reload client on mediamesh"
    )
    print(
        f"machine: {r['cores']} cores, {r['machine_busy_pct']}% busy during window "
        f"(all processes); publishers (ffmpeg -c copy) used {r['publishers_cpu_s']} CPU s"
    )
    print("-" * 72)
    print(f"{'':{W}}{'mediamesh':>18}{'nginx-rtmp':>18}")

    def row(label, key, f="{}"):
        print(f"{label:{W}}{f.format(mm[key]):>18}{f.format(ng[key]):>18}")

    row("CPU seconds in window", "cpu_s", "{:.2f}")
    row("CPU s per stream per minute", "cpu_s_per_stream_per_min", "{:.3f}")
    row("CPU % of one core", "cpu_pct_of_one_core", "{:.1f}")
    row("RSS MiB (mean)", "rss_mb_mean", "{:.1f}")
    row("RSS MiB (max)", "rss_mb_max", "{:.1f}")
    row("processes", "processes")
    row("segments produced in window", "segments_new_total")
    print(
        f"{'  per stream':{W}}"
        f"{'/'.join(str(v) for v in mm['segments_new_in_window'].values()):>18}"
        f"{'/'.join(str(v) for v in ng['segments_new_in_window'].values()):>18}"
    )
    print(
        f"{'playlist polls / errors':{W}}"
        f"{str(mm['playlist_polls']) + ' / ' + str(sum(mm['playlist_errors'].values())):>18}"
        f"{str(ng['playlist_polls']) + ' / ' + str(sum(ng['playlist_errors'].values())):>18}"
    )
    print("-" * 72)
    ratio = r["cpu_ratio_mediamesh_over_nginx"]
    verdict = "n/a" if ratio is None else ("MET" if ratio <= 0.5 else "NOT MET")
    print(f"CPU ratio mediamesh / nginx-rtmp: {ratio}  (target <= 0.5: {verdict})")
    if r["cpu_ratio_schedstat"] is not None:
        print(
            f"  cross-check from schedstat (ns resolution): mediamesh "
            f"{mm['cpu_s_schedstat']:.3f} s, nginx-rtmp {ng['cpu_s_schedstat']:.3f} s, "
            f"ratio {r['cpu_ratio_schedstat']}"
        )
    sl = r["cpu_ratio_per_slice"]
    print(
        f"  per {sl['slice_s']:.0f} s slice: {sl['values']} (min {sl['min']}, max {sl['max']})"
    )
    pd = r["part_delay_metric"]
    if pd is None:
        print("part delay: metric not available")
    else:
        p99 = pd.get("p99_s")
        mean = pd.get("window_mean_s")
        v = "n/a" if p99 is None else ("MET" if p99 <= 0.050 else "NOT MET")
        print(
            f"part delay (mediamesh_part_publish_delay_seconds, {pd['format']}): "
            f"mean {fmt_ms(mean)} over {pd['window_count']:.0f} parts in window, "
            f"p99 {fmt_ms(p99)} [{pd.get('p99_source', '')}]"
            + (f", max {fmt_ms(pd['max_s'])}" if "max_s" in pd else "")
            + f"  (target <= 50 ms: {v})"
        )
        if "quantiles_s" in pd:
            qs = ", ".join(f"q{k}={v * 1000:.2f}ms" for k, v in pd["quantiles_s"].items())
            print(f"  quantiles: {qs}")
    ll = r["llhls_client"]
    d = ll["part_interarrival_s"]
    if d:
        print(
            "sanity check (NOT the delay): LL-HLS blocking-reload client on "
            f"{ll['stream']}: {d['n']} part inter-arrivals, mean {d['mean'] * 1000:.1f} ms, "
            f"p50 {d['p50'] * 1000:.1f}, min {d['min'] * 1000:.1f}, p99 {d['p99'] * 1000:.1f}, "
            f"max {d['max'] * 1000:.1f}, stdev {d['stdev'] * 1000:.1f} ms "
            f"(expect ~500 ms); non-consecutive {ll['non_consecutive']}, errors {ll['errors']}"
        )
    else:
        print(
            f"sanity check: LL-HLS client saw no consecutive parts "
            f"(requests {ll['requests']}, errors {ll['errors']})"
        )
    for name, key in (("mediamesh", "mediamesh_log"), ("nginx-rtmp", "nginx_log")):
        lg = r[key]
        print(f"{name} log: {lg['warn_error_lines']} warning/error line(s)")
        for line in lg["excerpt"][:8]:
            print(f"    {line[:200]}")
    if not r["both_producing"]:
        print("WARNING: at least one stream produced no new segment in the window")
    print("=" * 72)


# ---------------------------------------------------------------- main


def playlist_msns(port, streams):
    """Media sequence number + segment count of each stream's playlist (None if absent)."""
    c = Http("127.0.0.1", port, timeout=5)
    out = []
    for i in range(streams):
        status, text = c.get(f"/live/s{i}/index.m3u8")
        if status == 200 and "#EXT-X-STREAM-INF" in text:
            # Multivariant: follow the first rendition's media playlist.
            uri = next(
                (l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")),
                None,
            )
            status, text = c.get(f"/live/s{i}/{uri}") if uri else (None, "")
        if status != 200:
            out.append(None)
            continue
        msn, segs, _ = parse_playlist(text)
        out.append(msn + len(segs))
    return out


def pair(a):
    """CPU of the RTMP-fed and the SRT-fed origin over the same window."""
    rows = {}
    tracks = {"rtmp": SchedTracker(), "srt": SchedTracker()}
    pids = {"rtmp": a.rtmp_pid, "srt": a.srt_pid}
    ports = {"rtmp": a.rtmp_http, "srt": a.srt_http}
    start_msn = {k: playlist_msns(ports[k], a.streams) for k in pids}
    start = {k: cpu_sample(pids[k]) for k in pids}
    for k in pids:
        tracks[k].sample(start[k][2])
    busy0, total0 = system_cpu()
    load0 = os.getloadavg()
    t0 = time.monotonic()
    rss_max = {k: 0 for k in pids}
    while time.monotonic() - t0 < a.window:
        time.sleep(1.0)
        for k in pids:
            cpu, rss, ps = cpu_sample(pids[k])
            tracks[k].sample(ps)
            rss_max[k] = max(rss_max[k], rss)
    elapsed = time.monotonic() - t0
    end = {k: cpu_sample(pids[k]) for k in pids}
    for k in pids:
        tracks[k].sample(end[k][2])
    busy1, total1 = system_cpu()
    end_msn = {k: playlist_msns(ports[k], a.streams) for k in pids}
    ours = sum(
        (tracks[k].seconds() if tracks[k].seconds() is not None else end[k][0] - start[k][0])
        for k in pids
    )
    machine_busy = (busy1 - busy0) / CLK_TCK
    for k in pids:
        cpu = tracks[k].seconds()
        if cpu is None:
            cpu = end[k][0] - start[k][0]
        made = [
            (e - b) if (b is not None and e is not None) else None
            for b, e in zip(start_msn[k], end_msn[k])
        ]
        rows[k] = {
            "cpu_seconds": round(cpu, 3),
            "cpu_percent_of_one_core": round(100 * cpu / elapsed, 2),
            "cpu_ms_per_stream_second": round(1000 * cpu / elapsed / a.streams, 3),
            "rss_max_mb": round(rss_max[k] / 1024, 1),
            "segments_made_per_stream": made,
        }
    ratio = (
        rows["srt"]["cpu_seconds"] / rows["rtmp"]["cpu_seconds"]
        if rows["rtmp"]["cpu_seconds"] > 0
        else None
    )
    srt_row = {
        "streams": a.streams,
        "window_s": round(elapsed, 1),
        "rtmp": rows["rtmp"],
        "srt": rows["srt"],
        "srt_over_rtmp_cpu": round(ratio, 3) if ratio else None,
        "other_jobs_cpu_cores": round(max(0.0, machine_busy - ours) / elapsed, 2),
        "load_average_before": [round(x, 2) for x in load0],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print()
    print(f"SRT row: {a.streams} stream(s) each, {elapsed:.0f} s window, same input (-c copy)")
    print(f"{'ingest':8} {'CPU s':>8} {'% core':>8} {'ms CPU/stream-s':>16} {'RSS max MB':>11}  segments/stream")
    for k in ("rtmp", "srt"):
        r = rows[k]
        print(
            f"{k:8} {r['cpu_seconds']:8.2f} {r['cpu_percent_of_one_core']:8.1f} "
            f"{r['cpu_ms_per_stream_second']:16.2f} {r['rss_max_mb']:11.1f}  {r['segments_made_per_stream']}"
        )
    print(
        f"SRT / RTMP CPU: {srt_row['srt_over_rtmp_cpu']}; other jobs on the machine: "
        f"{srt_row['other_jobs_cpu_cores']} cores; load {srt_row['load_average_before']} -> "
        f"{srt_row['load_average_after']}"
    )
    doc = {}
    if os.path.exists(a.json):
        with open(a.json) as f:
            doc = json.load(f)
    doc["srt_row"] = srt_row
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=2)
    bad = [k for k in rows if not any(m for m in rows[k]["segments_made_per_stream"] if m)]
    if bad:
        print(f"no segments made over {bad}: the row is not valid", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    fp = sub.add_parser("freeports")
    fp.add_argument("k", type=int)
    wh = sub.add_parser("wait-http")
    wh.add_argument("url")
    wh.add_argument("secs", type=float)
    m = sub.add_parser("measure")
    m.add_argument("--streams", type=int, required=True)
    m.add_argument("--window", type=float, required=True)
    m.add_argument("--warmup", type=float, required=True)
    m.add_argument("--mm-pid", type=int, required=True)
    m.add_argument("--ng-pid", type=int, required=True)
    m.add_argument("--mm-http", type=int, required=True)
    m.add_argument("--ng-http", type=int, required=True)
    m.add_argument("--mm-log", required=True)
    m.add_argument("--ng-log", required=True)
    m.add_argument("--publisher-pids", default="")
    m.add_argument("--json", required=True)
    m.add_argument("--input-desc", default="")
    m.add_argument("--commit", default="")
    m.add_argument("--poll-interval", type=float, default=0.5)
    m.add_argument("--sample-interval", type=float, default=1.0)
    m.add_argument("--slice", type=float, default=10.0)
    pr = sub.add_parser("pair")
    pr.add_argument("--streams", type=int, required=True)
    pr.add_argument("--window", type=float, required=True)
    pr.add_argument("--rtmp-pid", type=int, required=True)
    pr.add_argument("--srt-pid", type=int, required=True)
    pr.add_argument("--rtmp-http", type=int, required=True)
    pr.add_argument("--srt-http", type=int, required=True)
    pr.add_argument("--json", required=True)
    a = ap.parse_args()

    if a.cmd == "freeports":
        socks = []
        for _ in range(a.k):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
        for s in socks:
            s.close()
        return 0
    if a.cmd == "wait-http":
        u = urllib.parse.urlparse(a.url)
        c = Http(u.hostname, u.port, timeout=2)
        deadline = time.monotonic() + a.secs
        while time.monotonic() < deadline:
            if c.get(u.path or "/")[0] == 200:
                return 0
            time.sleep(0.2)
        return 1
    if a.cmd == "pair":
        return pair(a)
    return measure(a)


if __name__ == "__main__":
    sys.exit(main())
