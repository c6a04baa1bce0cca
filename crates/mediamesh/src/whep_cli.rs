//! WHEP playback settings of `serve` and `origin` (flags = TOML keys = `MEDIAMESH_*`
//! variables, flattened into their settings): the UDP socket every WebRTC session
//! shares, the address viewers are told to reach, and the limits.
//!
//! Not here: what they do (`origin::whep`).

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Result};
use clap::Args;
use origin::whep::WhepConfig;
use serde::{Deserialize, Serialize};

use crate::layers::seconds;

fn defaults() -> WhepConfig {
    WhepConfig::default()
}

fn default_udp() -> SocketAddr {
    defaults()
        .udp
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// WHEP (WebRTC playback) settings.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct WhepArgs {
    /// UDP address all WHEP (WebRTC) sessions share, one port (port 0: any free one;
    /// the SDP answer names it). For viewers on other hosts bind a reachable address
    /// and a fixed port, e.g. 0.0.0.0:8189 with --whep-candidate.
    #[arg(long, value_name = "ADDR", default_value_t = default_udp())]
    pub whep_udp: SocketAddr,
    /// IP address put in the WHEP answer's ICE candidate (needed when --whep-udp binds
    /// 0.0.0.0; use the address viewers reach, e.g. the public one).
    #[arg(long, value_name = "IP")]
    pub whep_candidate: Option<IpAddr>,
    /// WHEP sessions at once, all streams together; 0 turns WHEP off.
    #[arg(long, default_value_t = defaults().max_sessions)]
    pub max_whep_sessions: usize,
    /// Largest WHEP SDP offer in bytes.
    #[arg(long, default_value_t = defaults().max_offer_bytes)]
    pub max_whep_offer_bytes: usize,
    /// Seconds a WHEP session may hear nothing from its viewer before it ends.
    #[arg(long, default_value_t = defaults().idle_timeout.as_secs_f64())]
    pub whep_idle_timeout: f64,
}

impl WhepArgs {
    /// The WHEP configuration these settings describe.
    pub fn config(&self) -> Result<WhepConfig> {
        if self.max_whep_offer_bytes < 1024 || self.max_whep_offer_bytes > 1024 * 1024 {
            bail!(
                "--max-whep-offer-bytes must be between 1024 and 1048576, got {}",
                self.max_whep_offer_bytes
            );
        }
        Ok(WhepConfig {
            udp: Some(self.whep_udp),
            candidate_ip: self.whep_candidate,
            max_sessions: self.max_whep_sessions,
            max_offer_bytes: self.max_whep_offer_bytes,
            idle_timeout: seconds("whep-idle-timeout", self.whep_idle_timeout, 1.0, 3_600.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::origin_cli::{origin_config, OriginArgs, ALIASES};

    fn config(argv: &[&str]) -> Result<WhepConfig> {
        let args: OriginArgs = crate::layers::read(argv, ALIASES)?;
        Ok(origin_config(&args)?.whep)
    }

    #[test]
    fn whep_settings_from_file_and_flags() {
        let d = config(&[]).expect("defaults");
        assert_eq!(d.udp, defaults().udp);
        assert_eq!(d.max_sessions, defaults().max_sessions);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "whep_udp = \"0.0.0.0:8189\"\nwhep_candidate = \"203.0.113.7\"\nmax_whep_sessions = 9\nwhep_idle_timeout = 2.5\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let c = config(&["--config", p, "--max-whep-offer-bytes", "4096"]).expect("config");
        assert_eq!(c.udp, Some(SocketAddr::from(([0, 0, 0, 0], 8189))));
        assert_eq!(c.candidate_ip, Some(IpAddr::from([203, 0, 113, 7])));
        assert_eq!(c.max_sessions, 9);
        assert_eq!(c.max_offer_bytes, 4096);
        assert_eq!(c.idle_timeout, Duration::from_millis(2500));
        let e = config(&["--max-whep-offer-bytes", "10"]).expect_err("too small");
        assert!(e.to_string().contains("max-whep-offer-bytes"), "{e}");
        let e = config(&["--whep-idle-timeout", "0"]).expect_err("zero");
        assert!(e.to_string().contains("whep-idle-timeout"), "{e}");
    }
}
