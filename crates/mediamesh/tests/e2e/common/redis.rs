//! A real `redis-server` for the fleet scenarios: loopback only, nothing kept on disk,
//! killed on drop, every wait bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Proc;

pub struct Redis {
    _proc: Proc,
    pub port: u16,
}

impl Redis {
    /// Starts one on a free port.
    pub fn start() -> Redis {
        Self::start_on(super::free_port())
    }

    /// Starts one on `port` (to bring a killed one back where the fleet expects it).
    pub fn start_on(port: u16) -> Redis {
        let ok = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        assert!(
            ok,
            "redis-server is not installed: run `bash .ci/run` or `apt-get install redis-server`"
        );
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = Redis {
            _proc: Proc {
                child,
                name: "redis-server".into(),
            },
            port,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !r.pong() {
            assert!(Instant::now() < until, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn pong(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
