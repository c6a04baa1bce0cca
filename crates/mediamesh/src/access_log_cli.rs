//! The access log's settings (`--access-log`, `--access-log-queue`) shared by `edge`
//! and `serve` (flattened into their settings, so they are file keys and
//! `MEDIAMESH_*` variables too), and the signals that stop those roles (Ctrl-C and
//! SIGTERM, so a service manager's stop flushes the log as Ctrl-C does).
//!
//! Not here: the log itself (`edge::access_log`), or reopening it on SIGHUP (the
//! edge server does that while it runs).

use anyhow::{bail, Result};
use clap::Args;
use edge::access_log::{AccessLogConfig, DEFAULT_QUEUE_LINES};
use serde::{Deserialize, Serialize};

/// Where and how the edge writes its access log.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct AccessLogArgs {
    /// Access log: one JSON line per request, written by a thread of its own and
    /// reopened on SIGHUP or when the file is renamed (logrotate); `-` writes the lines
    /// to stdout. Without it, each request is an `access` event in the process log
    /// (stderr; `RUST_LOG=info,access=off` silences those).
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<String>,
    /// Lines waiting for the access log's writer before new ones are dropped (and
    /// counted in mediamesh_edge_access_log_dropped_total); serving never waits for
    /// the log.
    #[arg(long, value_name = "LINES", default_value_t = DEFAULT_QUEUE_LINES)]
    pub access_log_queue: usize,
}

impl AccessLogArgs {
    /// The log these settings describe; `None` when no `--access-log` is given.
    pub fn config(&self) -> Result<Option<AccessLogConfig>> {
        let Some(target) = &self.access_log else {
            return Ok(None);
        };
        if target.is_empty() {
            bail!("--access-log wants a file name, or - for stdout");
        }
        if self.access_log_queue == 0 {
            bail!("--access-log-queue must be at least 1 line");
        }
        let mut c = AccessLogConfig::new(target);
        c.queue_lines = self.access_log_queue;
        Ok(Some(c))
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
pub async fn stopped() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => tracing::info!("SIGTERM"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge::access_log::Target;

    #[derive(clap::Args, Debug, Serialize, Deserialize)]
    struct Role {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        #[serde(flatten)]
        log: AccessLogArgs,
    }

    fn read(argv: &[&str]) -> Result<Role> {
        crate::layers::read::<Role>(argv, &[])
    }

    #[test]
    fn flag_file_and_stdout() {
        assert!(read(&[])
            .expect("no flag")
            .log
            .config()
            .expect("ok")
            .is_none());
        let c = read(&["--access-log", "/var/log/mm/access.log"])
            .expect("flag")
            .log
            .config()
            .expect("ok")
            .expect("some");
        assert_eq!(c.target, Target::File("/var/log/mm/access.log".into()));
        assert_eq!(c.queue_lines, DEFAULT_QUEUE_LINES);
        let c = read(&["--access-log", "-", "--access-log-queue", "100"])
            .expect("stdout")
            .log
            .config()
            .expect("ok")
            .expect("some");
        assert_eq!(c.target, Target::Stdout);
        assert_eq!(c.queue_lines, 100);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "access_log = \"/tmp/a.log\"\naccess_log_queue = 7\n")
            .expect("write");
        let c = read(&["--config", file.to_str().expect("utf-8")])
            .expect("file")
            .log
            .config()
            .expect("ok")
            .expect("some");
        assert_eq!(c.target, Target::File("/tmp/a.log".into()));
        assert_eq!(c.queue_lines, 7);
        let e = read(&["--access-log", "x", "--access-log-queue", "0"])
            .expect("parses")
            .log
            .config()
            .expect_err("0 lines");
        assert!(e.to_string().contains("--access-log-queue"), "{e}");
    }
}
