#!/usr/bin/env python3
"""The edge against nginx over TLS with the plain load tools, alternating: one
`wrk` (PROTO=https) or `h2load` (PROTO=h2) run per server per round, on a cached
1 KB object, with each server's CPU per request (from /proc), the client's (its
rusage), and the kernel's listen-queue counters around each run (nstat).

    BIN=target/release/mediamesh PROTO=h2 C=1000 R=3 D=5 python3 bench/edge_tls_alternate.py
    BIN=... PROTO=h2 C=1000 N=1000 python3 bench/edge_tls_alternate.py   # N requests in all
                                                  # (N=C: one per connection, the connect rate)

nginx gets the TLS settings of edge_cache.sh (same certificate, TLS 1.3, AES-128-GCM
first, session cache and tickets, listen backlog 4096, 2 workers, access_log off);
the origin is edge_cache.py's. Needs nginx, wrk, h2load, openssl, nstat (iproute2).
MMARGS adds flags to the edge. Not run in CI."""
import os, re, resource, socket, subprocess, tempfile
BIN=os.environ["BIN"]; PROTO=os.environ.get("PROTO","h2"); C=os.environ.get("C","1000"); R=int(os.environ.get("R","3")); D=os.environ.get("D","5")
H=os.path.join(os.path.dirname(os.path.abspath(__file__)),"edge_cache.py")
T=tempfile.mkdtemp()
def free():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
O,NG,MM=free(),free(),free()
procs=[]
procs.append(subprocess.Popen(["python3",H,"origin","--port",str(O)],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL))
subprocess.run(["python3",H,"wait-http",f"http://127.0.0.1:{O}/__origin_stats","15"],check=True)
subprocess.run(f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost -keyout {T}/key.pem -out {T}/cert.pem",shell=True,stderr=subprocess.DEVNULL,check=True)
os.chmod(f"{T}/key.pem",0o644)
for d in ["logs","tmp","cache"]: os.makedirs(f"{T}/{d}")
open(f"{T}/nginx.conf","w").write(f"""user root; worker_processes 2; worker_rlimit_nofile 65536; pid {T}/nginx.pid; error_log {T}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{ access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000; keepalive_timeout 65s;
client_body_temp_path {T}/tmp/body; proxy_temp_path {T}/tmp/proxy; fastcgi_temp_path {T}/tmp/f; uwsgi_temp_path {T}/tmp/u; scgi_temp_path {T}/tmp/s;
proxy_cache_path {T}/cache levels=1:2 keys_zone=edge:64m max_size=512m inactive=1h use_temp_path=off;
upstream origin {{ server 127.0.0.1:{O}; keepalive 64; }}
ssl_session_cache shared:SSL:10m; ssl_session_timeout 1h; ssl_session_tickets on;
server {{ listen 127.0.0.1:{NG} ssl http2 backlog=4096; ssl_certificate {T}/cert.pem; ssl_certificate_key {T}/key.pem; ssl_protocols TLSv1.3;
ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256; ssl_prefer_server_ciphers on;
location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_cache edge; proxy_cache_valid 200 1h; proxy_cache_lock on; add_header X-Cache-Status $upstream_cache_status; }} }} }}
""")
ng=subprocess.Popen(["nginx","-p",T,"-c",f"{T}/nginx.conf","-e",f"{T}/logs/error.log","-g","daemon off;"],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL); procs.append(ng)
env=dict(os.environ,RUST_LOG="info,access=off")
mm=subprocess.Popen([BIN,"edge","--http",f"127.0.0.1:{MM}","--origin",f"http://127.0.0.1:{O}","--cache-mem","536870912","--max-connections-per-ip","100000","--tls-cert",f"{T}/cert.pem","--tls-key",f"{T}/key.pem"]+os.environ.get("MMARGS","").split(),env=env,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL); procs.append(mm)
for port in (NG, MM):
    subprocess.run(["python3",H,"wait-http",f"https://127.0.0.1:{port}/x","30"],check=True)
def pids(name,port):
    if name=="mm": return [mm.pid]
    out=subprocess.run(["pgrep","-P",str(ng.pid)],capture_output=True,text=True).stdout.split()
    return [int(x) for x in out]
def cpu(ps):
    t=0
    for p in ps:
        f=open(f"/proc/{p}/stat").read().rsplit(")",1)[1].split()
        t+=int(f[11])+int(f[12])
    return t/os.sysconf("SC_CLK_TCK")
def load(port):
    u=f"https://127.0.0.1:{port}/obj/1k.m4s"
    if PROTO=="h2" and os.environ.get("N"): cmd=["h2load","-t2",f"-c{C}","-m1",f"-n{os.environ['N']}",u]
    elif PROTO=="h2": cmd=["h2load","-t2",f"-c{C}","-m1",f"-D{D}",u]
    else: cmd=["wrk","-t2",f"-c{C}",f"-d{D}s",u]
    r0=resource.getrusage(resource.RUSAGE_CHILDREN)
    out=subprocess.run(cmd,capture_output=True,text=True).stdout
    r1=resource.getrusage(resource.RUSAGE_CHILDREN)
    cl=(r1.ru_utime-r0.ru_utime)+(r1.ru_stime-r0.ru_stime)
    if PROTO=="h2":
        n=int(re.search(r"requests: .*?(\d+) succeeded",out).group(1)); rps=float(re.search(r"finished in .*?, ([\d.]+) req/s",out).group(1))
    else:
        n=int(re.search(r"(\d+) requests in",out).group(1)); rps=float(re.search(r"Requests/sec:\s+([\d.]+)",out).group(1))
    return rps,n,cl
for port in (NG,MM):
    subprocess.run(["curl","-sk","-o","/dev/null",f"https://127.0.0.1:{port}/obj/1k.m4s"])
    subprocess.run(["h2load","-n2000","-c10",f"https://127.0.0.1:{port}/obj/1k.m4s"],capture_output=True)
res={"ng":[],"mm":[]}
try:
  for r in range(R):
    for name,port in (("ng",NG),("mm",MM)):
        ps=pids(name,port); subprocess.run(["nstat","-n"]); c0=cpu(ps); rps,n,cl=load(port); c1=cpu(ps)
        ns=subprocess.run(["nstat","-z","TcpExtListenOverflows","TcpExtSyncookiesSent","TcpRetransSegs"],capture_output=True,text=True).stdout.split("\n")[1:]
        print("   ", " ".join(" ".join(l.split()[:2]) for l in ns if l))
        res[name].append(rps)
        print(f"{name} rps {rps:8.0f} server us/req {(c1-c0)*1e6/n:5.1f} client us/req {cl*1e6/n:5.1f}",flush=True)
    print(f"  ratio {res['mm'][-1]/res['ng'][-1]:.2f}",flush=True)
finally:
  for p in procs: p.terminate()
  for p in procs: p.wait()
  subprocess.run(["rm","-rf",T])
