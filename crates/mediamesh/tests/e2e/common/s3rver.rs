//! A real S3-compatible server for the recording scenarios: `s3rver` from npm (S3's
//! REST API over a folder, SigV4 checked against its fixed credentials), installed by
//! `.ci/run` in `crates/mediamesh/tests/s3`. Loopback only, port 0 read back from its
//! first line, killed on drop, every wait bounded. Its folder outlives it, so a killed
//! server started again on the same port has what it stored.
//!
//! The checks read the bucket over plain HTTP (anonymous requests, which s3rver
//! allows): a listing and the objects themselves, without the origin's S3 client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Proc;

/// The credentials s3rver accepts.
pub const KEY_ID: &str = "S3RVER";
pub const SECRET: &str = "S3RVER";
/// The bucket it creates at start.
pub const BUCKET: &str = "recordings";

pub struct S3rver {
    proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/node_modules/s3rver/bin/s3rver.js")
}

impl S3rver {
    /// Starts one on a port of the kernel's choice, keeping its objects in `dir`.
    pub fn start(dir: &Path) -> S3rver {
        Self::start_on(dir, 0)
    }

    /// Starts one on `port` (to bring a killed one back where the origin expects it).
    pub fn start_on(dir: &Path, port: u16) -> S3rver {
        let js = script();
        assert!(
            js.exists(),
            "s3rver is not installed: run `bash .ci/run` or `(cd crates/mediamesh/tests/s3 && npm ci)`"
        );
        std::fs::create_dir_all(dir).expect("s3rver dir");
        let out = dir.with_extension(format!("out-{}-{port}", std::process::id()));
        let outf = std::fs::File::create(&out).expect("s3rver output");
        let errf = outf.try_clone().expect("s3rver output");
        let child = Command::new("node")
            .arg(&js)
            .args(["-d"])
            .arg(dir)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-s"])
            .args(["--configure-bucket", BUCKET])
            .stdin(Stdio::null())
            .stdout(outf)
            .stderr(errf)
            .spawn()
            .expect("start node (s3rver)");
        let mut proc = Proc {
            child,
            name: "s3rver".into(),
        };
        let until = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(p) = text
                .lines()
                .find_map(|l| l.strip_prefix("S3rver listening on 127.0.0.1:"))
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < until && proc.child.try_wait().ok().flatten().is_none(),
                "s3rver did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        S3rver {
            proc,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Starts it again on its port if it has exited (s3rver, killed in the middle of
    /// writing an upload, may crash later on what it left half-written; a real S3
    /// does not die of a request, its outage just ends): whether it did.
    pub fn revive_if_dead(&mut self) -> bool {
        if self.proc.child.try_wait().ok().flatten().is_none() {
            return false;
        }
        let again = S3rver::start_on(&self.dir, self.port);
        *self = again;
        true
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL, mid-request if there is one); returns its port.
    pub fn kill(mut self) -> u16 {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        self.port
    }

    /// Keys and sizes under `prefix` in the bucket, from a ListObjectsV2 request.
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        let (status, body) = super::get_text(&format!(
            "{}/{BUCKET}?list-type=2&max-keys=1000&prefix={prefix}",
            self.endpoint()
        ));
        assert_eq!(status, 200, "listing: {body}");
        assert!(!body.contains("<IsTruncated>true"), "more than one page");
        body.split("<Contents>")
            .skip(1)
            .filter_map(|c| {
                let tag = |t: &str| {
                    let open = format!("<{t}>");
                    let start = c.find(&open)? + open.len();
                    let end = c[start..].find(&format!("</{t}>"))? + start;
                    Some(c[start..end].to_string())
                };
                Some((tag("Key")?, tag("Size")?.parse().ok()?))
            })
            .collect()
    }

    /// The bytes of object `key`.
    pub fn object(&self, key: &str) -> Vec<u8> {
        let (status, body) = super::get(&format!("{}/{BUCKET}/{key}", self.endpoint()));
        assert_eq!(status, 200, "{key}");
        body
    }
}
