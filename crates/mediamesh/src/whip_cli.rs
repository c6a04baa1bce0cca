//! WHIP ingest settings of `serve` and `origin` (flags = TOML keys = `MEDIAMESH_*`
//! variables, flattened into their settings): the limits. The UDP socket is WHEP's
//! (`--whep-udp`, `--whep-candidate`).
//!
//! Not here: what they do (`origin::whip`).

use anyhow::{bail, Result};
use clap::Args;
use origin::whip::WhipConfig;
use serde::{Deserialize, Serialize};

use crate::layers::seconds;

fn defaults() -> WhipConfig {
    WhipConfig::default()
}

/// WHIP (WebRTC publish) settings.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct WhipArgs {
    /// WHIP publish sessions at once, all streams together; 0 turns WHIP off. WHIP
    /// shares the WHEP UDP socket (--whep-udp, --whep-candidate).
    #[arg(long, default_value_t = defaults().max_sessions)]
    pub max_whip_sessions: usize,
    /// Largest WHIP SDP offer in bytes.
    #[arg(long, default_value_t = defaults().max_offer_bytes)]
    pub max_whip_offer_bytes: usize,
    /// Seconds a WHIP publish may send no video before it ends (also how long an
    /// answered offer may take to connect).
    #[arg(long, default_value_t = defaults().idle_timeout.as_secs_f64())]
    pub whip_idle_timeout: f64,
}

impl WhipArgs {
    /// The WHIP configuration these settings describe.
    pub fn config(&self) -> Result<WhipConfig> {
        if self.max_whip_offer_bytes < 1024 || self.max_whip_offer_bytes > 1024 * 1024 {
            bail!(
                "--max-whip-offer-bytes must be between 1024 and 1048576, got {}",
                self.max_whip_offer_bytes
            );
        }
        Ok(WhipConfig {
            max_sessions: self.max_whip_sessions,
            max_offer_bytes: self.max_whip_offer_bytes,
            idle_timeout: seconds("whip-idle-timeout", self.whip_idle_timeout, 1.0, 3_600.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::origin_cli::{origin_config, OriginArgs, ALIASES};

    fn config(argv: &[&str]) -> Result<WhipConfig> {
        let args: OriginArgs = crate::layers::read(argv, ALIASES)?;
        Ok(origin_config(&args)?.whip)
    }

    #[test]
    fn whip_settings_from_file_and_flags() {
        let d = config(&[]).expect("defaults");
        assert_eq!(d.max_sessions, defaults().max_sessions);
        assert_eq!(d.max_offer_bytes, defaults().max_offer_bytes);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "max_whip_sessions = 3\nwhip_idle_timeout = 2.5\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let c = config(&["--config", p, "--max-whip-offer-bytes", "4096"]).expect("config");
        assert_eq!(c.max_sessions, 3);
        assert_eq!(c.max_offer_bytes, 4096);
        assert_eq!(c.idle_timeout, Duration::from_millis(2500));
        let e = config(&["--max-whip-offer-bytes", "10"]).expect_err("too small");
        assert!(e.to_string().contains("max-whip-offer-bytes"), "{e}");
        let e = config(&["--whip-idle-timeout", "0"]).expect_err("zero");
        assert!(e.to_string().contains("whip-idle-timeout"), "{e}");
    }
}
