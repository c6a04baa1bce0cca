//! Helpers for the end-to-end scenarios: start the real `mediamesh` binary on free
//! loopback ports, run ffmpeg as publisher and player, and fetch over HTTP. Every
//! child process is killed on drop and every wait is bounded.

#![allow(dead_code)]

pub mod ertmp;
pub mod redis;
pub mod s3rver;
pub mod test_origin;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago: only for programs that cannot bind port 0 and
/// report it (redis-server). `mediamesh` roles get `127.0.0.1:0` and tell their port
/// (see [`Server`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Fails the test with a clear message when a tool the scenario needs is missing.
pub fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "{tool} is not installed: run `bash .ci/run` (installs ffmpeg and chromium) or `apt-get install {tool}`"
    );
}

/// The ports of a role's `listening role=… http=ADDR [rtmp=ADDR]` log line.
pub fn listening(log: &str) -> Option<(u16, Option<u16>)> {
    let line = log.lines().find(|l| l.contains(" listening role="))?;
    let port = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port())
    };
    Some((port("http=")?, port("rtmp=")))
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Waits up to `limit` for the process to exit; returns its success.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A running `mediamesh` process.
pub struct Server {
    pub proc: Proc,
    pub http: u16,
    pub rtmp: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Server {
    /// Starts `mediamesh {role} --http 127.0.0.1:0 --rtmp 127.0.0.1:0 --data … {extra}`
    /// and waits for /healthz.
    pub fn start(role: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = vec![
            "--rtmp".into(),
            "127.0.0.1:0".into(),
            "--data".into(),
            dir.path().join("data").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(role, dir, 0, &args)
    }

    /// Starts `mediamesh edge --http 127.0.0.1:0 {extra}`.
    pub fn start_edge(extra: &[&str]) -> Server {
        Self::start_edge_on(0, tempfile::tempdir().expect("tempdir"), extra)
    }

    /// Starts `mediamesh {role} --http 127.0.0.1:0 {extra}` (a router, a tracker,
    /// an origin whose flags say the rest) and waits until it serves.
    pub fn start_role(role: &str, extra: &[&str]) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(role, tempfile::tempdir().expect("tempdir"), 0, &args)
    }

    /// Like [`Server::start_role`] in a folder the test prepared (a key file in it,
    /// say); the role's log goes there too.
    pub fn start_role_in(role: &str, dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(role, dir, 0, &args)
    }

    /// Like [`Server::start_role_in`] with more environment variables (credentials).
    pub fn start_role_in_env(
        role: &str,
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn_env(role, dir, 0, &args, env)
    }

    /// Starts an edge on a given port (0: any) with a given folder (to restart one in
    /// place).
    pub fn start_edge_on(http: u16, dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn("edge", dir, http, &args)
    }

    fn spawn(role: &str, dir: tempfile::TempDir, http: u16, args: &[String]) -> Server {
        Self::spawn_env(role, dir, http, args, &[])
    }

    fn spawn_env(
        role: &str,
        dir: tempfile::TempDir,
        http: u16,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Server {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.path().join(format!("{role}-{n}.log"));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediamesh"));
        if role == "edge" {
            // The test origin's knobs are query parameters of media paths, which an
            // edge keeps only when told (as an operator would for their origin).
            cmd.env("MEDIAMESH_KEEP_PARAM", test_origin::KNOBS);
        }
        cmd.envs(env.iter().copied());
        let child = cmd
            .arg(role)
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start mediamesh");
        let mut server = Server {
            proc: Proc {
                child,
                name: "mediamesh".into(),
            },
            http,
            rtmp: 0,
            dir,
            log,
        };
        // Generous: an edge with Wasm filters compiles them first (debug-built
        // Cranelift, and other test binaries on the same cores).
        let until = Instant::now() + Duration::from_secs(60);
        // The role says where it listens once it does (port 0 = the kernel's pick).
        let (http, rtmp) = loop {
            if let Some(found) = listening(&server.log_text()) {
                break found;
            }
            assert!(
                server.alive() && Instant::now() < until,
                "mediamesh did not say where it listens:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        server.http = http;
        server.rtmp = rtmp.unwrap_or(0);
        let tls = args.iter().any(|a| a == "--tls-cert");
        loop {
            // A TLS server is up once it accepts; others must answer /healthz.
            let up = if tls {
                std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
            } else {
                get(&server.url("/healthz")).0 == 200
            };
            if up {
                break;
            }
            assert!(
                Instant::now() < until,
                "mediamesh did not come up:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.http)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub fn rtmp_url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.rtmp)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory of the server process in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.proc.child.try_wait(), Ok(None))
    }

    /// Kills the process and hands back its folder (to restart in place).
    pub fn kill(self) -> (u16, tempfile::TempDir) {
        let Server {
            mut proc,
            http,
            dir,
            ..
        } = self;
        let _ = proc.child.kill();
        let _ = proc.child.wait();
        (http, dir)
    }
}

/// A blocking HTTP GET with a bounded wait: (status, body). Status 0 = no answer.
pub fn get(url: &str) -> (u16, Vec<u8>) {
    get_with_timeout(url, Duration::from_secs(15))
}

pub fn get_with_timeout(url: &str, timeout: Duration) -> (u16, Vec<u8>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client");
    match client.get(url).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.bytes().map(|b| b.to_vec()).unwrap_or_default())
        }
        Err(_) => (0, Vec::new()),
    }
}

pub fn get_text(url: &str) -> (u16, String) {
    let (s, b) = get(url);
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// Polls `url` until it answers 200, up to `limit`.
pub fn wait_for_200(url: &str, limit: Duration) -> String {
    let until = Instant::now() + limit;
    loop {
        let (s, body) = get_text(url);
        if s == 200 {
            return body;
        }
        assert!(
            Instant::now() < until,
            "{url} did not answer 200 within {limit:?} (last {s}: {body})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// ffmpeg publishing a synthetic 30 fps picture and a tone to `url` for `secs`, over
/// RTMP (FLV).
pub fn publish(url: &str, secs: u32, size: &str) -> Proc {
    publish_as(url, secs, size, "flv")
}

/// [`publish`] in container `format`: `flv` for RTMP, `mpegts` for SRT.
pub fn publish_as(url: &str, secs: u32, size: &str, format: &str) -> Proc {
    require("ffmpeg");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "60",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc {
        child,
        name: format!("ffmpeg publish ({format})"),
    }
}

/// Runs a command to completion with a time limit.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let until = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Codec names of the streams ffprobe sees at `url`.
pub fn probe_codecs(url: &str) -> Vec<String> {
    require("ffprobe");
    let out = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            url,
        ]),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Duration in seconds of a media file or URL, from ffprobe's format section.
pub fn probe_duration(path: &str) -> f64 {
    let out = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            path,
        ]),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// Records `secs` seconds of `url` with `ffmpeg -c copy` into `out`; returns ffmpeg's stderr.
pub fn record(url: &str, secs: u32, out: &Path) -> String {
    require("ffmpeg");
    let o = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "warning", "-y", "-i", url])
            .args(["-t", &secs.to_string(), "-c", "copy"])
            .arg(out),
        Duration::from_secs(u64::from(secs) + 40),
    );
    assert!(
        o.status.success(),
        "ffmpeg recording of {url} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fetches `/api/v1/keys` and the signed digest list at `path`, verifies the
/// signature, and returns the object → SHA-256 map.
pub fn verified_digests(server: &Server, path: &str) -> std::collections::BTreeMap<String, String> {
    let (status, keys) = get_text(&server.url("/api/v1/keys"));
    assert_eq!(status, 200);
    let keys: serde_json::Value = serde_json::from_str(&keys).expect("json");
    let pk_hex = keys["keys"][0]["public_key_hex"].as_str().expect("key");
    let pk: [u8; 32] = hex_decode(pk_hex).try_into().expect("32 bytes");
    let pk = ed25519_dalek::VerifyingKey::from_bytes(&pk).expect("key");
    let (status, body) = get_text(&server.url(path));
    assert_eq!(status, 200, "{path}: {body}");
    let signed: integrity::SignedList = serde_json::from_str(&body).expect("json");
    integrity::verify(&pk, &signed)
        .expect("signature verifies")
        .objects
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// One browser scenario at a time inside this process (for `cargo test`, which runs
/// the tests of this binary on threads; nextest runs each in its own process and
/// serialises them with its `browser` test group): each runs a server, Chromium and
/// native peers, and their timing suffers when several share 2 cores.
pub fn browser_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `web/` folder, after checking that what browser tests need is installed
/// (`web/node_modules` with playwright-core, and Chromium).
pub fn browser_ready() -> std::path::PathBuf {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `bash .ci/run` or `cd web && npm ci`"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            || std::env::var_os("CHROMIUM").is_some(),
        "Chromium is missing: run `bash .ci/run` or `apt-get install chromium`"
    );
    web
}

/// A TCP connection to `127.0.0.1:port` from the loopback address `src`.
pub fn connect_from(src: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match tokio::time::timeout(Duration::from_secs(10), sock.connect(addr)).await {
            Ok(r) => r?.into_std(),
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        }
    })?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// True when the server closes `s` (EOF or reset) within `limit`.
pub fn closed_within(s: &TcpStream, limit: Duration) -> bool {
    let mut r = s;
    let until = Instant::now() + limit;
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}
