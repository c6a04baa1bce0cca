#!/usr/bin/env python3
"""Helper of bench/edge_cache.sh (stdlib only).

Subcommands:
  freeports K            print K free TCP ports on 127.0.0.1, one per line
  origin --port P        the counting origin (asyncio, HTTP/1.1 keep-alive):
                           /obj/1k.m4s     1024 bytes
                           /obj/2m.m4s     2 MiB
                           /obj/new-*.m4s  2 MiB, first byte only after --delay-ms (200)
                         always with Cache-Control: public, max-age=3600; anything else
                         is a 404. GET /__origin_stats (not counted) answers a JSON object
                         {path: requests} with the exact count of requests per path
                         (path as sent, query included).
  wait-http URL SECS     wait until URL answers at all (any status; exit 1 on timeout)
  herd ...               one thundering herd against one cache (prints JSON)
  report JSON            print the table of an earlier run again
  measure ...            the whole run: (a) 1 KB req/s and (b) 2 MB throughput with wrk
                         for every cache, in rotating order, repeated; (d) the sweep of
                         connection counts for 1 KB hits over plain HTTP/1.1, TLS
                         HTTP/1.1 (wrk) and h2 (h2load), (e) contention rows (a busy
                         loop pinned to core 1); (c) herds; prints the table and writes
                         the JSON.

CPU time of each cache is read from /proc (utime+stime of every process of the cache's
process tree) around every wrk run, so the report also gives CPU per request, which does
not depend on how busy the rest of the machine is.
"""

import argparse
import asyncio
import email.utils
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
SIZES = {"/obj/1k.m4s": 1024, "/obj/2m.m4s": 2 * 1024 * 1024}
NEW_SIZE = 2 * 1024 * 1024
STATS_PATH = "/__origin_stats"


def pattern(n, seed):
    """Deterministic body of n bytes (not all zeros, so nothing can compress it away)."""
    block = (seed.encode() + b"|" + bytes(range(256))) * (65536 // 200 + 1)
    block = block[:65536]
    return (block * (n // len(block) + 1))[:n]


# ---------------------------------------------------------------- origin


class Origin:
    def __init__(self, delay_ms):
        self.delay = delay_ms / 1000.0
        self.counts = {}
        self.bodies = {p: pattern(n, p) for p, n in SIZES.items()}
        self.new_body = pattern(NEW_SIZE, "new")

    async def handle(self, reader, writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, version = parts
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                clen = int(headers.get("content-length", "0") or 0)
                if clen:
                    await reader.readexactly(clen)
                conn_hdr = headers.get("connection", "").lower()
                close = "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr)
                path = target.split("?", 1)[0]
                if path == STATS_PATH:
                    body = json.dumps(self.counts).encode()
                    hdrs = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
                    status = "200 OK"
                else:
                    self.counts[target] = self.counts.get(target, 0) + 1
                    if path in self.bodies:
                        body = self.bodies[path]
                    elif path.startswith("/obj/new-") and path.endswith(".m4s"):
                        await asyncio.sleep(self.delay)
                        body = self.new_body
                    else:
                        body = None
                    if body is None:
                        status, body = "404 Not Found", b"not found\n"
                        hdrs = [("Content-Type", "text/plain")]
                    else:
                        status = "200 OK"
                        hdrs = [("Content-Type", "video/iso.segment"),
                                ("Cache-Control", "public, max-age=3600")]
                out = [f"HTTP/1.1 {status}",
                       f"Date: {email.utils.formatdate(usegmt=True)}",
                       f"Content-Length: {len(body)}"]
                out += [f"{k}: {v}" for k, v in hdrs]
                if close:
                    out.append("Connection: close")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
                if method != "HEAD":
                    writer.write(body)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass


def run_origin(a):
    origin = Origin(a.delay_ms)

    async def main():
        server = await asyncio.start_server(origin.handle, "127.0.0.1", a.port,
                                            backlog=4096, limit=65536)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def origin_counts(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATS_PATH}", timeout=10) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------- small helpers


def freeports(k):
    socks = []
    for _ in range(k):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
    for s in socks:
        s.close()


def insecure_context():
    """TLS client context for the bench's self-signed certificate (loopback only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_http(url, secs):
    deadline = time.time() + secs
    ctx = insecure_context() if url.startswith("https:") else None
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2, context=ctx).read()
            return True
        except urllib.error.HTTPError:
            return True
        except Exception:
            time.sleep(0.2)
    return False


def get(port, path, scheme="http"):
    """GET on the cache; (status, headers dict lower-case, body length)."""
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}")
    ctx = insecure_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.headers.items()}, len(body)
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, len(e.read())


def cache_status(h):
    """What the cache says about hit/miss, whichever header it uses."""
    if "x-cache" in h:
        return h["x-cache"]
    if "x-cache-status" in h:
        return h["x-cache-status"]
    if "x-varnish" in h:  # two transaction ids = served from cache
        return "HIT" if len(h["x-varnish"].split()) == 2 else "MISS"
    return "?"


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
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sum(stats[p][1] for p in tree if p in stats) / CLK_TCK


def system_busy():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle, total


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------- herd client


class HerdConn(asyncio.BufferedProtocol):
    """One client: sends the GET when told, parses the head, counts body bytes
    (Content-Length, chunked or until close) into a shared scratch buffer."""

    scratch = memoryview(bytearray(1 << 20))

    def __init__(self, herd):
        self.herd = herd
        self.transport = None
        self.head = bytearray()
        self.state = "head"
        self.status = None
        self.headers = {}
        self.clen = None
        self.got = 0
        self.t_first = None
        self.t_done = None
        self.error = None
        # chunked state
        self.cstate = "size"
        self.cline = bytearray()
        self.cleft = 0

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint):
        return self.scratch

    def buffer_updated(self, n):
        if self.t_first is None:
            self.t_first = time.perf_counter()
        mv = self.scratch[:n]
        if self.state == "head":
            self.head += mv
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                if len(self.head) > 65536:
                    self.fail("response head too large")
                return
            rest = bytes(self.head[i + 4:])
            lines = self.head[:i].decode("latin-1").split("\r\n")
            self.head = None
            try:
                self.status = int(lines[0].split(" ")[1])
            except (IndexError, ValueError):
                self.fail(f"bad status line {lines[0]!r}")
                return
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    self.headers[k.strip().lower()] = v.strip()
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                self.state = "chunked"
            elif "content-length" in self.headers:
                self.state = "length"
                self.clen = int(self.headers["content-length"])
            else:
                self.state = "eof"
            if rest:
                self.body(memoryview(rest))
            elif self.state == "length" and self.clen == 0:
                self.finish()
            return
        self.body(mv)

    def body(self, mv):
        if self.state == "length":
            self.got += len(mv)
            if self.got >= self.clen:
                self.finish()
        elif self.state == "eof":
            self.got += len(mv)
        elif self.state == "chunked":
            self.chunked(mv)

    def chunked(self, mv):
        i, n = 0, len(mv)
        while i < n and self.state == "chunked":
            if self.cstate == "data":
                take = min(self.cleft, n - i)
                self.got += take
                self.cleft -= take
                i += take
                if self.cleft == 0:
                    self.cstate = "crlf"
                    self.cline = bytearray()
            else:  # size line, CRLF after data, trailer lines: all line-based
                j = bytes(mv[i:i + 256]).find(b"\n")
                if j < 0:
                    self.cline += mv[i:i + 256]
                    i = min(n, i + 256)
                    continue
                self.cline += mv[i:i + j]
                i += j + 1
                line = bytes(self.cline).strip()
                self.cline = bytearray()
                if self.cstate == "size":
                    size = int(line.split(b";")[0], 16)
                    if size == 0:
                        self.cstate = "trailer"
                    else:
                        self.cleft = size
                        self.cstate = "data"
                elif self.cstate == "crlf":
                    self.cstate = "size"
                elif self.cstate == "trailer" and not line:
                    self.finish()

    def finish(self):
        if self.t_done is None:
            self.t_done = time.perf_counter()
            self.state = "done"
            self.herd.done(self)

    def fail(self, msg):
        if self.error is None and self.t_done is None:
            self.error = msg
            self.state = "done"
            self.herd.done(self)
            if self.transport:
                self.transport.abort()

    def connection_lost(self, exc):
        if self.state == "eof":
            self.finish()
        elif self.t_done is None:
            self.fail(f"connection lost after {self.got} body bytes ({exc or 'EOF'})")


class Herd:
    def __init__(self, n):
        self.n = n
        self.left = n
        self.all_done = None

    def done(self, conn):
        self.left -= 1
        if self.left == 0:
            self.all_done.set_result(None)


async def herd_run(port, path, clients, expect, timeout):
    loop = asyncio.get_running_loop()
    herd = Herd(clients)
    herd.all_done = loop.create_future()
    conns = []
    t_c = time.perf_counter()
    for start in range(0, clients, 100):  # batches: stay under listen backlogs
        batch = await asyncio.gather(*[
            loop.create_connection(lambda: HerdConn(herd), "127.0.0.1", port)
            for _ in range(start, min(clients, start + 100))])
        conns += [p for _, p in batch]
    connect_s = time.perf_counter() - t_c
    await asyncio.sleep(0.5)  # let the server accept and register them all
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: edge-cache-herd\r\n\r\n".encode()
    t0 = time.perf_counter()
    for c in conns:
        c.transport.write(req)
    t_sent = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.shield(herd.all_done), timeout)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    for c in conns:
        c.transport.abort()
    ok = [c for c in conns if c.error is None and c.t_done is not None
          and c.status == 200 and c.got == expect]
    bad = [c for c in conns if c not in ok]
    done = sorted(c.t_done - t0 for c in conns if c.t_done is not None)
    first = sorted(c.t_first - t0 for c in conns if c.t_first is not None)
    problems = {}
    for c in bad:
        if c.error:
            key = c.error.split(" after ")[0]
        elif c.t_done is None:
            key = "timed out"
        elif c.status != 200:
            key = f"status {c.status}"
        else:
            key = f"body {c.got} bytes != {expect}"
        problems[key] = problems.get(key, 0) + 1
    cstat = {}
    for c in conns:
        s = cache_status(c.headers) if c.headers else "-"
        cstat[s] = cstat.get(s, 0) + 1

    def q(xs, p):
        return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None

    return {
        "clients": clients,
        "ok": len(ok),
        "failed": len(bad),
        "problems": problems,
        "timed_out": timed_out,
        "connect_s": connect_s,
        "send_spread_s": t_sent - t0,
        "last_byte_s": done[-1] if len(done) == clients and not bad else None,
        "last_byte_s_of_completed": done[-1] if done else None,
        "first_byte_p50_s": q(first, 0.5),
        "first_byte_max_s": first[-1] if first else None,
        "done_p50_s": q(done, 0.5),
        "done_p99_s": q(done, 0.99),
        "cache_status": cstat,
        "chunked": sum(1 for c in conns if "chunked" in c.headers.get("transfer-encoding", "")),
    }


def herd(port, path, clients, expect, timeout):
    return asyncio.run(herd_run(port, path, clients, expect, timeout))


# ---------------------------------------------------------------- wrk

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,' ..
    '"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(99),
    latency.max))
end
"""


def run_wrk(a, port, path, pid, lua, conns=None, duration=None, scheme="http", burner=None):
    """One wrk run. `burner`: pid of our own busy loop, whose CPU is not other jobs'."""
    conns = conns or a.wrk_conns
    duration = duration or a.duration
    busy0, tot0 = system_busy()
    cpu0 = tree_cpu(pid)
    burn0 = tree_cpu(burner) if burner else 0.0
    ru0 = os.times()
    cmd = ["wrk", f"-t{min(a.wrk_threads, conns)}", f"-c{conns}", f"-d{duration}s",
           "--timeout", "10s", "-s", lua, f"{scheme}://127.0.0.1:{port}{path}"]
    up0 = origin_counts(a.origin).get(path, 0)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    cpu1 = tree_cpu(pid)
    burn1 = tree_cpu(burner) if burner else 0.0
    up1 = origin_counts(a.origin).get(path, 0)
    ru1 = os.times()
    busy1, tot1 = system_busy()
    m = re.search(r"WRKJSON (\{.*\})", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stdout}\n{p.stderr}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    ncpu = os.cpu_count() or 1
    wall_cores = (busy1 - busy0) / max(1, tot1 - tot0) * ncpu
    wrk_cpu = (ru1.children_user + ru1.children_system) - (ru0.children_user + ru0.children_system)
    cache_cpu = cpu1 - cpu0
    burn_cpu = burn1 - burn0
    r.update({
        "req_per_s": r["requests"] / secs,
        "upstream_requests": up1 - up0,
        "bytes_per_s": r["bytes"] / secs,
        "errors": r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"],
        "cache_cpu_s": cache_cpu,
        "cache_cores": cache_cpu / secs,
        "wrk_cores": wrk_cpu / secs,
        "machine_busy_cores": wall_cores,
        "burner_cores": burn_cpu / secs,
        # what the rest of the machine (other jobs) used during the run
        "other_cores": max(0.0, wall_cores - (cache_cpu + wrk_cpu + burn_cpu) / secs),
        "cpu_us_per_req": cache_cpu / max(1, r["requests"]) * 1e6,
    })
    return r


def h2_seconds(v):
    """h2load's time figures ("850us", "1.20ms", "2.5s") in seconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]


def run_h2load(a, port, path, pid, conns, duration, burner=None):
    """One h2load run (HTTP/2 over TLS, ALPN h2), measured like `run_wrk`."""
    busy0, tot0 = system_busy()
    cpu0 = tree_cpu(pid)
    burn0 = tree_cpu(burner) if burner else 0.0
    ru0 = os.times()
    threads = min(a.wrk_threads, conns)
    cmd = ["h2load", f"-t{threads}", f"-c{conns}", f"-m{a.h2_streams}", f"-D{duration}",
           f"https://127.0.0.1:{port}{path}"]
    up0 = origin_counts(a.origin).get(path, 0)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    cpu1 = tree_cpu(pid)
    burn1 = tree_cpu(burner) if burner else 0.0
    up1 = origin_counts(a.origin).get(path, 0)
    ru1 = os.times()
    busy1, tot1 = system_busy()
    out = p.stdout
    fin = re.search(r"finished in ([\d.]+(?:us|ms|s)),", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if p.returncode != 0 or not fin or not req:
        raise RuntimeError(f"h2load failed ({p.returncode}): {out}\n{p.stderr}")
    secs = h2_seconds(fin.group(1)) or float(duration)
    total, _, done, ok, failed, errored, timeout = (int(x) for x in req.groups())
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    proto = re.search(r"Application protocol: (\S+)", out)
    cipher = re.search(r"Cipher: (\S+)", out)
    tlsv = re.search(r"TLS Protocol: (\S+)", out)
    ncpu = os.cpu_count() or 1
    wall_cores = (busy1 - busy0) / max(1, tot1 - tot0) * ncpu
    client_cpu = (ru1.children_user + ru1.children_system) - (ru0.children_user + ru0.children_system)
    cache_cpu = cpu1 - cpu0
    burn_cpu = burn1 - burn0
    wall = max(1e-9, secs)
    return {
        "requests": ok, "duration_us": int(secs * 1e6),
        "h2load": {"total": total, "done": done, "succeeded": ok, "failed": failed,
                   "errored": errored, "timeout": timeout,
                   "protocol": proto and proto.group(1), "tls": tlsv and tlsv.group(1),
                   "cipher": cipher and cipher.group(1)},
        "lat_mean_us": (h2_seconds(lat.group(3)) or 0) * 1e6 if lat else None,
        "req_per_s": ok / wall,
        "upstream_requests": up1 - up0,
        "errors": failed + errored + timeout,
        "cache_cpu_s": cache_cpu,
        "cache_cores": cache_cpu / wall,
        "wrk_cores": client_cpu / wall,
        "machine_busy_cores": wall_cores,
        "burner_cores": burn_cpu / wall,
        "other_cores": max(0.0, wall_cores - (cache_cpu + client_cpu + burn_cpu) / wall),
        "cpu_us_per_req": cache_cpu / max(1, ok) * 1e6,
    }


def other_sample(pids, secs=1.0):
    """Cores used by other jobs over `secs` with no load of ours running: the machine's
    busy time (/proc/stat) less the CPU of our own process trees (caches, origin)."""
    busy0, tot0 = system_busy()
    ours0 = sum(tree_cpu(p) for p in pids)
    time.sleep(secs)
    busy1, tot1 = system_busy()
    ours1 = sum(tree_cpu(p) for p in pids)
    ncpu = os.cpu_count() or 1
    wall = (busy1 - busy0) / max(1, tot1 - tot0) * ncpu
    return max(0.0, wall - (ours1 - ours0) / secs)


def start_burner():
    """A busy loop pinned to the last core (core 1 of 2), at the bench's own niceness,
    so it competes with the caches on equal terms. Returns the Popen."""
    core = (os.cpu_count() or 1) - 1
    return subprocess.Popen(["taskset", "-c", str(core), "nice", "-n", "0",
                             "sh", "-c", "while :; do :; done"])


def sweep(a, caches, tls_caches, lua, log):
    """(d) the connection-count sweep and (e) the contention rows: every row runs each
    cache REPEATS times in rotating order; medians and ratios against nginx (and
    Varnish on plain HTTP) from the same row."""
    path = "/obj/1k.m4s"
    conns_list = [int(x) for x in a.sweep_conns.split()]
    protos = a.sweep_protos.split()
    plan = [(proto, n, False) for proto in protos for n in conns_list]
    for n in [int(x) for x in (a.contention_conns or "").split()]:
        for proto in [p for p in ("http", "https") if p in protos]:
            plan.append((proto, n, True))
    all_pids = [p for p in [c["pid"] for c in caches + tls_caches] + [a.origin_pid] if p > 1]
    rows = []
    for proto, n, burn in plan:
        row_caches = caches if proto == "http" else tls_caches
        if not row_caches:
            continue
        row = {"proto": proto, "conns": n, "burner": burn,
               "loadavg_before": loadavg(), "other_cores_before": other_sample(all_pids),
               "runs": {c["name"]: [] for c in row_caches}}
        burner = start_burner() if burn else None
        try:
            for rep in range(a.sweep_repeats):
                k = rep % len(row_caches)
                order = row_caches[k:] + row_caches[:k]
                for c in order:
                    bpid = burner.pid if burner else None
                    if proto == "h2":
                        r = run_h2load(a, c["port"], path, c["pid"], n, a.sweep_duration, bpid)
                    else:
                        r = run_wrk(a, c["port"], path, c["pid"], lua, conns=n,
                                    duration=a.sweep_duration, scheme=proto, burner=bpid)
                    row["runs"][c["name"]].append(r)
                    log(f"{proto:5s} c={n:<4d}{' +burner' if burn else ''} rep {rep + 1} "
                        f"{c['name']:9s} {r['req_per_s']:9.0f} req/s  errors {r['errors']}  "
                        f"cache {r['cache_cores']:.2f} cores, client {r['wrk_cores']:.2f}, "
                        f"burner {r['burner_cores']:.2f}, other jobs {r['other_cores']:.2f}")
                    time.sleep(1)
        finally:
            if burner:
                burner.kill()
                burner.wait()
        row["loadavg_after"] = loadavg()
        row["other_cores_after"] = other_sample(all_pids)
        med_of = lambda name, key: med([r[key] for r in row["runs"][name]])
        row["caches"] = {name: {
            "req_per_s": med_of(name, "req_per_s"),
            "best_req_per_s": max(r["req_per_s"] for r in runs),
            "cpu_us_per_req": med_of(name, "cpu_us_per_req"),
            "cache_cores": med_of(name, "cache_cores"),
            "other_cores": med_of(name, "other_cores"),
            "errors": sum(r["errors"] for r in runs),
            "upstream_requests": sum(r["upstream_requests"] for r in runs),
        } for name, runs in row["runs"].items()}
        rc = row["caches"]
        row["ratios"] = {}
        if "mediamesh" in rc:
            for other in rc:
                if other != "mediamesh":
                    row["ratios"][f"mediamesh/{other}"] = {
                        "req_per_s": ratio(rc["mediamesh"]["req_per_s"], rc[other]["req_per_s"]),
                        "cpu_per_req": ratio(rc["mediamesh"]["cpu_us_per_req"],
                                             rc[other]["cpu_us_per_req"]),
                    }
        x = row["ratios"].get("mediamesh/nginx", {}).get("req_per_s")
        log(f"row {proto} c={n}{' +burner' if burn else ''}: mediamesh/nginx "
            f"{'-' if x is None else f'{x:.2f}'}x; load {row['loadavg_before'][0]:.2f} -> "
            f"{row['loadavg_after'][0]:.2f}, other jobs {row['other_cores_before']:.2f} -> "
            f"{row['other_cores_after']:.2f} cores")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- measure


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(x, y):
    return x / y if x is not None and y else None


def measure(a):
    caches = []
    for spec in a.cache:
        name, port, pid = spec.split(":")
        caches.append({"name": name, "port": int(port), "pid": int(pid)})
    names = [c["name"] for c in caches]
    tls_caches = []
    for spec in a.tls_cache or []:
        name, port, pid = spec.split(":")
        tls_caches.append({"name": name, "port": int(port), "pid": int(pid)})
    lua = os.path.join(a.tmp, "report.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    log = lambda *x: print("[edge_cache]", *x, file=sys.stderr, flush=True)
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": a.commit,
           "versions": json.loads(a.versions), "cpus": os.cpu_count(),
           "loadavg_start": loadavg(), "params": {
               "wrk": f"-t{a.wrk_threads} -c{a.wrk_conns} -d{a.duration}s", "repeats": a.repeats,
               "herd_clients": a.herd_clients, "herd_repeats": a.herd_repeats,
               "origin_delay_ms": a.delay_ms, "mediamesh_RUST_LOG": a.mm_log},
           "caches": {}}
    log(f"load average at start: {res['loadavg_start']}")

    # warm-up and hit check
    for c in caches:
        c["warm"] = {}
        for path in SIZES:
            statuses = []
            for _ in range(3):
                st, h, n = get(c["port"], path)
                if st != 200 or n != SIZES[path]:
                    raise SystemExit(f"{c['name']}: GET {path} -> {st}, {n} bytes")
                statuses.append(cache_status(h))
            c["warm"][path] = statuses
        log(f"{c['name']}: warm, cache status on 3 GETs: {c['warm']}")
    for c in tls_caches:
        statuses = []
        for _ in range(3):
            st, h, n = get(c["port"], "/obj/1k.m4s", "https")
            if st != 200 or n != SIZES["/obj/1k.m4s"]:
                raise SystemExit(f"{c['name']} (TLS): GET /obj/1k.m4s -> {st}, {n} bytes")
            statuses.append(cache_status(h))
        c["warm"] = statuses
        log(f"{c['name']} (TLS): warm, cache status on 3 GETs: {statuses}")
    counts_warm = origin_counts(a.origin)

    runs = {c["name"]: {"a": [], "b": []} for c in caches}
    for rep in range(a.repeats):
        order = caches[rep % len(caches):] + caches[:rep % len(caches)]
        for test, path in (("a", "/obj/1k.m4s"), ("b", "/obj/2m.m4s")):
            for c in order:
                r = run_wrk(a, c["port"], path, c["pid"], lua)
                runs[c["name"]][test].append(r)
                log(f"rep {rep + 1}/{a.repeats} ({test}) {c['name']:9s} "
                    f"{r['req_per_s']:10.0f} req/s {r['bytes_per_s'] / 2**20:9.1f} MiB/s  "
                    f"errors {r['errors']}  cache {r['cache_cores']:.2f} cores, "
                    f"wrk {r['wrk_cores']:.2f}, other jobs {r['other_cores']:.2f}")
                time.sleep(1)
    counts_ab = origin_counts(a.origin)

    res["sweep"] = sweep(a, caches, tls_caches, lua, log) if a.sweep else []
    res["sweep_params"] = {
        "duration_s": a.sweep_duration, "repeats": a.sweep_repeats, "conns": a.sweep_conns,
        "protos": a.sweep_protos, "h2load_streams_per_conn": a.h2_streams,
        "contention_conns": a.contention_conns, "client_threads": a.wrk_threads,
        "tls": "TLS 1.3, TLS_AES_128_GCM_SHA256 preferred by both servers, ECDSA P-256 "
               "certificate, session resumption on (nginx shared cache 10m + tickets, "
               "rustls cache + tickets)",
        "tls_negotiated": a.tls_info}
    counts_sweep = origin_counts(a.origin)

    herds = {c["name"]: [] for c in caches}
    stamp = int(time.time())
    for rep in range(a.herd_repeats):
        order = caches[rep % len(caches):] + caches[:rep % len(caches)]
        for c in order:
            path = f"/obj/new-{c['name']}-{stamp}-{rep}.m4s"
            before = origin_counts(a.origin).get(path, 0)
            h = herd(c["port"], path, a.herd_clients, NEW_SIZE, a.herd_timeout)
            time.sleep(0.3)
            h["path"] = path
            h["upstream_requests"] = origin_counts(a.origin).get(path, 0) - before
            herds[c["name"]].append(h)
            lb = h["last_byte_s"]
            log(f"herd {rep + 1}/{a.herd_repeats} {c['name']:9s} upstream {h['upstream_requests']}, "
                f"ok {h['ok']}/{h['clients']}, last byte "
                f"{'-' if lb is None else f'{lb * 1000:.0f} ms'}, p50 "
                f"{(h['done_p50_s'] or 0) * 1000:.0f} ms, first byte p50 "
                f"{(h['first_byte_p50_s'] or 0) * 1000:.0f} ms, {h['cache_status']}"
                + (f", problems {h['problems']}" if h["problems"] else ""))
            time.sleep(1)

    for c in caches:
        n = c["name"]
        ra, rb, hs = runs[n]["a"], runs[n]["b"], herds[n]
        res["caches"][n] = {
            "port": c["port"], "warm_cache_status": c["warm"],
            "a_req_per_s": med([r["req_per_s"] for r in ra]),
            "a_best_req_per_s": max(r["req_per_s"] for r in ra),
            "a_cpu_us_per_req": med([r["cpu_us_per_req"] for r in ra]),
            "a_lat_p99_ms": med([r["lat_p99_us"] / 1000 for r in ra]),
            "a_errors": sum(r["errors"] for r in ra),
            "b_bytes_per_s": med([r["bytes_per_s"] for r in rb]),
            "b_best_bytes_per_s": max(r["bytes_per_s"] for r in rb),
            "b_cpu_s_per_gib": med([r["cache_cpu_s"] / max(1, r["bytes"]) * 2**30 for r in rb]),
            "b_errors": sum(r["errors"] for r in rb),
            "ab_upstream_requests": sum(r["upstream_requests"] for r in ra + rb),
            "c_upstream_requests": [h["upstream_requests"] for h in hs],
            "c_last_byte_s": med([h["last_byte_s"] for h in hs]),
            "c_all_ok": all(h["ok"] == h["clients"] for h in hs),
            "runs_a": ra, "runs_b": rb, "herds": hs,
        }
    res["origin_counts_after_warmup"] = {p: counts_warm.get(p, 0) for p in SIZES}
    res["origin_counts_after_ab"] = {p: counts_ab.get(p, 0) for p in SIZES}
    res["origin_counts_after_sweep"] = {p: counts_sweep.get(p, 0) for p in SIZES}
    res["loadavg_end"] = loadavg()
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    mm = res["caches"].get("mediamesh")
    res["ratios"] = {}
    for other in names:
        if other == "mediamesh" or not mm:
            continue
        o = res["caches"][other]
        res["ratios"][f"mediamesh/{other}"] = {
            "a_req_per_s": ratio(mm["a_req_per_s"], o["a_req_per_s"]),
            "b_throughput": ratio(mm["b_bytes_per_s"], o["b_bytes_per_s"]),
            "a_req_per_s_best": ratio(mm["a_best_req_per_s"], o["a_best_req_per_s"]),
            "b_throughput_best": ratio(mm["b_best_bytes_per_s"], o["b_best_bytes_per_s"]),
            "c_last_byte_time": ratio(mm["c_last_byte_s"], o["c_last_byte_s"]),
            "a_cpu_per_req": ratio(mm["a_cpu_us_per_req"], o["a_cpu_us_per_req"]),
        }
    if mm:
        ng = res["caches"].get("nginx")
        lbs = {n: v["c_last_byte_s"] for n, v in res["caches"].items()}
        res["targets"] = {
            "a_ge_1.3x_nginx": bool(ng and (ratio(mm["a_req_per_s"], ng["a_req_per_s"]) or 0) >= 1.3),
            "b_ge_1.0x_nginx": bool(ng and (ratio(mm["b_bytes_per_s"], ng["b_bytes_per_s"]) or 0) >= 1.0),
            "c_exactly_1_upstream": all(x == 1 for x in mm["c_upstream_requests"]),
            "c_lowest_last_byte": mm["c_last_byte_s"] is not None and all(
                v is None or mm["c_last_byte_s"] <= v for v in lbs.values()),
            "c_all_clients_ok": mm["c_all_ok"],
        }
        for proto, label in (("http", "plain"), ("https", "tls_h1"), ("h2", "h2")):
            rs = [r for r in res["sweep"] if r["proto"] == proto and not r["burner"]]
            xs = [r["ratios"].get("mediamesh/nginx", {}).get("req_per_s") for r in rs]
            if rs:
                res["targets"][f"sweep_{label}_ge_1.5x_nginx_every_conns"] = all(
                    x is not None and x >= 1.5 for x in xs)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2)
    report(res)
    print(f"\nJSON: {a.json}")


def fill_best(res):
    """Best-of fields for JSON files written before they existed."""
    C = res["caches"]
    for v in C.values():
        v.setdefault("a_best_req_per_s", max(r["req_per_s"] for r in v["runs_a"]))
        v.setdefault("b_best_bytes_per_s", max(r["bytes_per_s"] for r in v["runs_b"]))
    mm = C.get("mediamesh")
    for k, r in res.get("ratios", {}).items():
        o = C[k.split("/")[1]]
        r.setdefault("a_req_per_s_best", ratio(mm["a_best_req_per_s"], o["a_best_req_per_s"]))
        r.setdefault("b_throughput_best", ratio(mm["b_best_bytes_per_s"], o["b_best_bytes_per_s"]))


def report(res):
    fill_best(res)
    C = res["caches"]
    names = list(C)

    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    p = res["params"]
    print()
    print(f"edge cache benchmark  {res['started']}  commit {res['commit']}  {res['cpus']} CPUs")
    print(f"wrk {p['wrk']}, median of {p['repeats']}; herd {p['herd_clients']} clients, "
          f"median of {p['herd_repeats']}; origin first-byte delay {p['origin_delay_ms']} ms for new objects")
    print(f"mediamesh RUST_LOG={p.get('mediamesh_RUST_LOG')!r}; nginx access_log off; varnish default (shm log only)")
    print(f"load average start {res['loadavg_start']}  end {res['loadavg_end']}")
    w = 14
    print()
    print(f"{'':34s}" + "".join(f"{n:>{w}s}" for n in names))
    rows = [
        ("(a) 1 KB hit, req/s", "a_req_per_s", "{:.0f}"),
        ("    best run, req/s", "a_best_req_per_s", "{:.0f}"),
        ("    CPU per request, us", "a_cpu_us_per_req", "{:.1f}"),
        ("    latency p99, ms", "a_lat_p99_ms", "{:.2f}"),
        ("    wrk errors", "a_errors", "{}"),
        ("(b) 2 MB hit, MiB/s", "b_bytes_per_s", None),
        ("    best run, MiB/s", "b_best_bytes_per_s", None),
        ("    CPU s per GiB served", "b_cpu_s_per_gib", "{:.3f}"),
        ("    wrk errors", "b_errors", "{}"),
        ("(a)+(b) upstream requests", "ab_upstream_requests", "{}"),
        ("(c) herd upstream requests", "c_upstream_requests", None),
        ("    last byte of last client, ms", "c_last_byte_s", None),
        ("    all clients got 2 MiB", "c_all_ok", "{}"),
    ]
    for label, key, fmt in rows:
        cells = []
        for n in names:
            v = C[n][key]
            if key in ("b_bytes_per_s", "b_best_bytes_per_s"):
                s = f(v and v / 2**20, "{:.1f}")
            elif key == "c_last_byte_s":
                s = f(v and v * 1000, "{:.0f}")
            elif key == "c_upstream_requests":
                s = ",".join(str(x) for x in v)
            else:
                s = f(v, fmt)
            cells.append(f"{s:>{w}s}")
        print(f"{label:34s}" + "".join(cells))
    print()
    for k, r in res.get("ratios", {}).items():
        print(f"{k:20s} (a) req/s {f(r['a_req_per_s'], '{:.2f}')}x   "
              f"(b) throughput {f(r['b_throughput'], '{:.2f}')}x   "
              f"(c) last-byte time {f(r['c_last_byte_time'], '{:.2f}')}x (lower is better)   "
              f"CPU/req {f(r['a_cpu_per_req'], '{:.2f}')}x")
        print(f"{'':20s} best runs: (a) {f(r['a_req_per_s_best'], '{:.2f}')}x   "
              f"(b) {f(r['b_throughput_best'], '{:.2f}')}x")
    if "targets" in res:
        print("targets: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in res["targets"].items()))
    print(f"origin requests for the hit objects (all caches together, after warm-up / after (a)+(b)): "
          f"{res['origin_counts_after_warmup']} / {res['origin_counts_after_ab']}")
    other = [r["other_cores"] for n in names for r in C[n]["runs_a"] + C[n]["runs_b"]]
    if other:
        print(f"CPU used by other jobs during the wrk runs: median {statistics.median(other):.2f} "
              f"cores, max {max(other):.2f} (of {res['cpus']})")
    report_sweep(res)


def report_sweep(res):
    rows = res.get("sweep") or []
    if not rows:
        return
    sp = res.get("sweep_params", {})

    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    print()
    print(f"(d) sweep and (e) contention: 1 KB hits, req/s median of {sp.get('repeats')} "
          f"alternating runs of {sp.get('duration_s')} s; client {sp.get('client_threads')} "
          f"threads (wrk for http/https, h2load -m{sp.get('h2load_streams_per_conn')} for h2)")
    print(f"TLS: {sp.get('tls')}")
    for line in (sp.get("tls_negotiated") or "").splitlines():
        print(f"  negotiated: {line}")
    hdr = (f"{'proto':6s}{'conns':>6s} {'burner':7s}{'nginx':>9s}{'varnish':>9s}{'mm':>9s}"
           f"{'mm/ng':>7s}{'mm/va':>7s}  {'CPU us/req ng/va/mm':>20s}  "
           f"{'other cores bef/dur/aft':>24s}  {'load bef->aft':>13s}  err")
    print(hdr)
    for r in rows:
        c = r["caches"]
        g = lambda n, k: c.get(n, {}).get(k)
        rt = r["ratios"]
        during = med([v.get("other_cores") for v in c.values()])
        cpu = "/".join(f(g(n, "cpu_us_per_req"), "{:.1f}") for n in ("nginx", "varnish", "mediamesh"))
        errs = sum(v["errors"] for v in c.values())
        print(f"{r['proto']:6s}{r['conns']:>6d} {'yes' if r['burner'] else 'no':7s}"
              f"{f(g('nginx', 'req_per_s'), '{:.0f}'):>9s}{f(g('varnish', 'req_per_s'), '{:.0f}'):>9s}"
              f"{f(g('mediamesh', 'req_per_s'), '{:.0f}'):>9s}"
              f"{f(rt.get('mediamesh/nginx', {}).get('req_per_s'), '{:.2f}'):>7s}"
              f"{f(rt.get('mediamesh/varnish', {}).get('req_per_s'), '{:.2f}'):>7s}  {cpu:>20s}  "
              f"{r['other_cores_before']:>7.2f}/{f(during, '{:.2f}'):>5s}/{r['other_cores_after']:<7.2f}"
              f"   {r['loadavg_before'][0]:>5.2f}->{r['loadavg_after'][0]:<5.2f}  {errs}")
    if "origin_counts_after_sweep" in res:
        print(f"origin requests for the hit objects after the sweep (all caches): "
              f"{res['origin_counts_after_sweep']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    fp = sub.add_parser("freeports")
    fp.add_argument("k", type=int)
    o = sub.add_parser("origin")
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--delay-ms", type=float, default=200)
    wh = sub.add_parser("wait-http")
    wh.add_argument("url")
    wh.add_argument("secs", type=float)
    h = sub.add_parser("herd")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--path", required=True)
    h.add_argument("--clients", type=int, default=1000)
    h.add_argument("--expect", type=int, default=NEW_SIZE)
    h.add_argument("--timeout", type=float, default=60)
    rp = sub.add_parser("report")
    rp.add_argument("json")
    m = sub.add_parser("measure")
    m.add_argument("--cache", action="append", required=True, help="name:port:pid")
    m.add_argument("--origin", type=int, required=True)
    m.add_argument("--tmp", required=True)
    m.add_argument("--json", required=True)
    m.add_argument("--commit", default="unknown")
    m.add_argument("--versions", default="{}")
    m.add_argument("--mm-log", default="")
    m.add_argument("--duration", type=int, default=10)
    m.add_argument("--repeats", type=int, default=3)
    m.add_argument("--wrk-threads", type=int, default=2)
    m.add_argument("--wrk-conns", type=int, default=100)
    m.add_argument("--herd-clients", type=int, default=1000)
    m.add_argument("--herd-repeats", type=int, default=3)
    m.add_argument("--herd-timeout", type=float, default=60)
    m.add_argument("--delay-ms", type=float, default=200)
    m.add_argument("--origin-pid", type=int, default=0)
    m.add_argument("--tls-cache", action="append", help="name:port:pid of a TLS listener")
    m.add_argument("--sweep", type=int, default=1)
    m.add_argument("--sweep-conns", default="16 64 256 1000")
    m.add_argument("--sweep-duration", type=int, default=10)
    m.add_argument("--sweep-repeats", type=int, default=3)
    m.add_argument("--sweep-protos", default="http https h2")
    m.add_argument("--h2-streams", type=int, default=1)
    m.add_argument("--contention-conns", default="64")
    m.add_argument("--tls-info", default="")
    a = ap.parse_args()
    if a.cmd == "freeports":
        freeports(a.k)
    elif a.cmd == "origin":
        run_origin(a)
    elif a.cmd == "wait-http":
        sys.exit(0 if wait_http(a.url, a.secs) else 1)
    elif a.cmd == "herd":
        print(json.dumps(herd(a.port, a.path, a.clients, a.expect, a.timeout), indent=2))
    elif a.cmd == "report":
        with open(a.json) as f:
            report(json.load(f))
    elif a.cmd == "measure":
        measure(a)


if __name__ == "__main__":
    main()
