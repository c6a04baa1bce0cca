//! Origin settings with their defaults. Every field is reachable from the command line
//! and the TOML config file of the `mediamesh` binary; this module only holds values
//! and checks that they make sense ([`OriginConfig::validate`], every problem named by
//! its flag, those of the recording and object storage settings too).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::record::s3::{S3Config, MAX_PART_BYTES, MIN_PART_BYTES};

/// Everything the origin needs to run.
#[derive(Clone, Debug)]
pub struct OriginConfig {
    /// HTTP listen address.
    pub http: SocketAddr,
    /// RTMP listen address; `None` disables RTMP ingest.
    pub rtmp: Option<SocketAddr>,
    /// SRT listen address (UDP); `None` (the default) disables SRT ingest.
    pub srt: Option<SocketAddr>,
    /// SRT encryption and latency.
    pub srt_settings: SrtConfig,
    /// Data folder: keeps the signing key.
    pub data_dir: PathBuf,
    /// Folder of MP4 files served as VOD; `None` disables VOD.
    pub media_dir: Option<PathBuf>,
    /// Publish the built-in looping `demo` channel.
    pub demo: bool,
    pub packaging: PackagingConfig,
    pub limits: Limits,
    /// Stream name -> publish key. A stream listed here needs `?key=` to match; streams
    /// not listed are open unless `require_keys` is set.
    pub publish_keys: HashMap<String, String>,
    /// Refuse publishes for streams without an entry in `publish_keys`.
    pub require_keys: bool,
    /// Answer `/metrics` on the HTTP port (off when an admin listener serves it).
    pub public_metrics: bool,
    /// Webhooks (`on_publish`, `on_unpublish`).
    pub hooks: crate::hooks::HookConfig,
    /// Recording live streams to disk and their retention (`record`).
    pub record: crate::record::RecordConfig,
    /// Serve the write API on the HTTP port, behind this admin token (at least 16
    /// characters); `None`: not on the HTTP port (an admin listener may serve it).
    pub admin_token: Option<String>,
    /// More routes for the HTTP port, merged as given (the binary's operator console
    /// when there is no admin listener); they guard themselves.
    pub extra_routes: Option<axum::Router>,
    /// WHEP playback (WebRTC): UDP address, limits.
    pub whep: crate::whep::WhepConfig,
    /// WHIP ingest (WebRTC publish): limits; it shares WHEP's UDP socket.
    pub whip: crate::whip::WhipConfig,
}

/// SRT ingest settings (see `ingest::srt`).
#[derive(Clone, Debug)]
pub struct SrtConfig {
    /// SRT publishers must encrypt with this passphrase (10 to 79 characters); `None`
    /// accepts unencrypted publishers only.
    pub passphrase: Option<String>,
    /// Key length publishers must use: 16, 24 or 32 bytes; 0 takes the publisher's.
    pub pbkeylen: u16,
    /// Receiver latency (TSBPD buffer); the larger of this and the publisher's applies.
    pub latency: Duration,
}

impl Default for SrtConfig {
    fn default() -> Self {
        Self {
            passphrase: None,
            pbkeylen: 0,
            latency: Duration::from_millis(120),
        }
    }
}

/// How live streams are cut and kept.
#[derive(Clone, Debug)]
pub struct PackagingConfig {
    /// Segments are cut on the first keyframe at or after this duration.
    pub segment_target: Duration,
    /// LL-HLS part duration target (0.2 s .. segment target).
    pub part_target: Duration,
    /// How much past media stays playable (DVR window).
    pub dvr_window: Duration,
    /// A publisher that drops may come back within this time and the stream continues.
    pub reconnect_grace: Duration,
    /// How long an ended stream stays listed with EXT-X-ENDLIST before it is forgotten.
    pub ended_linger: Duration,
    /// Longest merged-read wait of publishing RTMP connections (see `ingest::rtmp::serve`).
    pub ingest_read_batch: Duration,
}

/// Explicit bounds on what clients and publishers may cost us.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of media kept per rendition; the oldest segments go first when exceeded.
    pub max_rendition_bytes: usize,
    /// Concurrent RTMP connections.
    pub max_rtmp_connections: usize,
    /// Concurrent RTMP connections from one client address (IPv6 by /64).
    pub max_rtmp_connections_per_ip: usize,
    /// Concurrent HTTP connections.
    pub max_http_connections: usize,
    /// Largest HTTP request head (request line + headers) in bytes.
    pub max_http_header_bytes: usize,
    /// Live streams at once.
    pub max_streams: usize,
    /// Largest moov box of a VOD file we parse.
    pub max_vod_moov_bytes: u64,
    /// Bytes of media (video and audio) a pending LL-HLS part may collect before the
    /// packager closes it early; a part needs no keyframe, so this cut is always safe.
    /// `None`: [`Limits::part_bytes`] derives it from `max_rendition_bytes`.
    pub max_part_bytes: Option<usize>,
    /// Bytes of media the open segment may reach while no keyframe arrives to cut it;
    /// past it the publisher is dropped (a segment cut without a keyframe would not
    /// start with an IDR, which players cannot start from). `None`:
    /// [`Limits::open_segment_bytes`] derives it from `max_rendition_bytes`.
    pub max_open_segment_bytes: Option<usize>,
    /// Media time a segment may run without a keyframe before the publisher is dropped.
    /// `None`: [`Limits::keyframe_interval`] derives it from the segment target.
    pub max_keyframe_interval: Option<Duration>,
    /// Consecutive video frames whose timestamp does not advance before the publisher
    /// is dropped (such frames are also capped in bytes by the part limit).
    pub max_frozen_frames: usize,
    /// An RTMP connection must have a publish accepted within this time from accept
    /// (handshake, `connect`, `createStream`, `publish`); a connection that publishes
    /// nothing (never, or no more) is closed once it has been open this long.
    pub rtmp_publish_deadline: Duration,
    /// A publishing RTMP connection that delivers no audio or video frame for this long
    /// is closed (bytes that never complete a frame do not count).
    pub rtmp_idle_timeout: Duration,
    /// Concurrent SRT connections (handshakes in progress hold no state).
    pub max_srt_connections: usize,
    /// A publishing SRT connection that delivers no audio or video frame for this long
    /// is closed.
    pub srt_idle_timeout: Duration,
    /// HTTP: time to the first byte, idle time, connections per client address.
    pub conn: service::ConnLimits,
}

impl Default for PackagingConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(500),
            dvr_window: Duration::from_secs(60),
            reconnect_grace: Duration::from_secs(10),
            ended_linger: Duration::from_secs(60),
            ingest_read_batch: Duration::from_millis(100),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rendition_bytes: 256 * 1024 * 1024,
            max_rtmp_connections: 256,
            max_rtmp_connections_per_ip: 16,
            max_http_connections: 10_000,
            max_http_header_bytes: 16 * 1024,
            max_streams: 1_000,
            max_vod_moov_bytes: 64 * 1024 * 1024,
            max_part_bytes: None,
            max_open_segment_bytes: None,
            max_keyframe_interval: None,
            max_frozen_frames: 300,
            rtmp_publish_deadline: Duration::from_secs(10),
            rtmp_idle_timeout: Duration::from_secs(15),
            max_srt_connections: 256,
            srt_idle_timeout: Duration::from_secs(15),
            conn: service::ConnLimits::default(),
        }
    }
}

/// Floor of the derived per-publisher byte caps: one large keyframe must always fit.
const MIN_DERIVED_CAP: usize = 1024 * 1024;

impl Limits {
    /// Effective `max_open_segment_bytes`: by default a quarter of
    /// `max_rendition_bytes`, at least 1 MiB.
    pub fn open_segment_bytes(&self) -> usize {
        self.max_open_segment_bytes
            .unwrap_or_else(|| (self.max_rendition_bytes / 4).max(MIN_DERIVED_CAP))
    }

    /// Effective `max_part_bytes`: by default a sixteenth of `max_rendition_bytes`, at
    /// least 1 MiB, and never more than the open segment may hold.
    pub fn part_bytes(&self) -> usize {
        self.max_part_bytes
            .unwrap_or_else(|| (self.max_rendition_bytes / 16).max(MIN_DERIVED_CAP))
            .min(self.open_segment_bytes())
    }

    /// Effective `max_keyframe_interval`: by default 4 segment targets, at least 20 s.
    pub fn keyframe_interval(&self, segment_target: Duration) -> Duration {
        self.max_keyframe_interval
            .unwrap_or_else(|| (segment_target * 4).max(Duration::from_secs(20)))
    }
}

impl OriginConfig {
    /// Defaults bound to loopback, as DESIGN.md promises.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rtmp: Some(SocketAddr::from(([127, 0, 0, 1], 1935))),
            srt: None,
            srt_settings: SrtConfig::default(),
            data_dir,
            media_dir: None,
            demo: false,
            packaging: PackagingConfig::default(),
            limits: Limits::default(),
            publish_keys: HashMap::new(),
            require_keys: false,
            public_metrics: true,
            hooks: crate::hooks::HookConfig::default(),
            record: crate::record::RecordConfig::default(),
            admin_token: None,
            extra_routes: None,
            whep: crate::whep::WhepConfig::default(),
            whip: crate::whip::WhipConfig::default(),
        }
    }
}

/// A setting outside what the origin can run with.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The setting, named as its flag (`part-target`).
    pub setting: &'static str,
    pub problem: String,
}

fn within(
    setting: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError {
            setting,
            problem: format!(
                "must be between {} and {} seconds, got {}",
                min.as_secs_f64(),
                max.as_secs_f64(),
                value.as_secs_f64()
            ),
        });
    }
    Ok(())
}

/// The object storage settings (`--s3-*`); the first problem found.
fn check_s3(s3: &S3Config) -> Result<(), ConfigError> {
    let bad = |setting, problem: String| Err(ConfigError { setting, problem });
    if let Some(e) = &s3.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() > 2048 {
            return bad(
                "s3-endpoint",
                format!("{e:?} is not an http:// or https:// URL"),
            );
        }
    }
    if s3.region.is_empty()
        || s3.region.len() > 64
        || !s3
            .region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return bad(
            "s3-region",
            format!("{:?} is not a region name (like us-east-1)", s3.region),
        );
    }
    let p = s3.sizing.part_bytes;
    if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&p) {
        return bad(
            "s3-part-bytes",
            format!(
                "must be {MIN_PART_BYTES} to {MAX_PART_BYTES}, got {p} (AWS wants at least 5 MiB)"
            ),
        );
    }
    if s3.sizing.multipart_bytes == 0 {
        return bad("s3-multipart-bytes", "must be at least 1".into());
    }
    let secs = |d: Duration| d.as_secs_f64();
    if !(1.0..=600.0).contains(&secs(s3.timeout)) {
        return bad(
            "s3-timeout",
            format!("must be 1 to 600 seconds, got {}", secs(s3.timeout)),
        );
    }
    if !(1.0..=3600.0).contains(&secs(s3.retry_max)) {
        return bad(
            "s3-retry-max",
            format!("must be 1 to 3600 seconds, got {}", secs(s3.retry_max)),
        );
    }
    if s3.upload_rate == Some(0) {
        return bad(
            "s3-upload-rate",
            "must be at least 1 byte per second".into(),
        );
    }
    if s3.max_fetch_bytes == 0 {
        return bad("s3-max-fetch-bytes", "must be at least 1".into());
    }
    Ok(())
}

impl OriginConfig {
    /// Checks that the settings make sense together; the first problem found, named by
    /// its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.packaging;
        let s = Duration::from_secs_f64;
        within("segment-target", p.segment_target, s(0.5), s(30.0))?;
        within("part-target", p.part_target, s(0.2), s(5.0))?;
        if p.part_target > p.segment_target {
            return Err(ConfigError {
                setting: "part-target",
                problem: "must not exceed segment-target".into(),
            });
        }
        within("dvr-window", p.dvr_window, s(6.0), s(86_400.0))?;
        within("reconnect-grace", p.reconnect_grace, s(0.0), s(3_600.0))?;
        within("ingest-batch", p.ingest_read_batch, s(0.0), s(0.2))?;
        let l = &self.limits;
        for (setting, v) in [
            ("max-rendition-bytes", l.max_rendition_bytes),
            ("max-http-connections", l.max_http_connections),
            ("max-rtmp-connections", l.max_rtmp_connections),
            ("max-rtmp-connections-per-ip", l.max_rtmp_connections_per_ip),
            ("max-http-header-bytes", l.max_http_header_bytes),
            ("max-streams", l.max_streams),
            ("max-srt-connections", l.max_srt_connections),
        ] {
            if v == 0 {
                return Err(ConfigError {
                    setting,
                    problem: "must be at least 1".into(),
                });
            }
        }
        for (setting, v) in [
            ("max-part-bytes", l.max_part_bytes),
            ("max-open-segment-bytes", l.max_open_segment_bytes),
            ("max-frozen-frames", Some(l.max_frozen_frames)),
        ] {
            if v == Some(0) {
                return Err(ConfigError {
                    setting,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if let Some(k) = l.max_keyframe_interval {
            // A segment is cut at the first keyframe past its target: allowing less
            // would drop every publisher.
            within("max-keyframe-interval", k, p.segment_target, s(3_600.0))?;
        }
        within(
            "rtmp-publish-deadline",
            l.rtmp_publish_deadline,
            s(1.0),
            s(3_600.0),
        )?;
        within("rtmp-idle-timeout", l.rtmp_idle_timeout, s(1.0), s(3_600.0))?;
        within("srt-idle-timeout", l.srt_idle_timeout, s(1.0), s(3_600.0))?;
        let srt = &self.srt_settings;
        within("srt-latency", srt.latency, s(0.02), s(10.0))?;
        if let Some(pass) = &srt.passphrase {
            if !(10..=79).contains(&pass.len()) {
                return Err(ConfigError {
                    setting: "srt-passphrase",
                    problem: format!(
                        "must be 10 to 79 characters (as libsrt requires), got {}",
                        pass.len()
                    ),
                });
            }
        }
        if ![0, 16, 24, 32].contains(&srt.pbkeylen) {
            return Err(ConfigError {
                setting: "srt-pbkeylen",
                problem: format!("must be 0 (any), 16, 24 or 32, got {}", srt.pbkeylen),
            });
        }
        let h = &self.hooks;
        for (setting, url) in [
            ("hook-on-publish", &h.on_publish),
            ("hook-on-unpublish", &h.on_unpublish),
            ("hook-on-play", &h.on_play),
            ("hook-on-stop", &h.on_stop),
            ("hook-on-record-done", &h.on_record_done),
        ] {
            if let Some(url) = url {
                crate::hooks::check_url(url).map_err(|problem| ConfigError { setting, problem })?;
            }
        }
        within("hook-timeout", h.timeout, s(0.1), s(60.0))?;
        within("hook-play-idle", h.play_idle, s(1.0), s(3_600.0))?;
        if h.retries > 10 {
            return Err(ConfigError {
                setting: "hook-retries",
                problem: format!("must be 0 to 10, got {}", h.retries),
            });
        }
        // RTMP waits for on_publish inside its publish deadline.
        if h.on_publish.is_some() && h.timeout >= l.rtmp_publish_deadline {
            return Err(ConfigError {
                setting: "hook-timeout",
                problem: "must be shorter than rtmp-publish-deadline".into(),
            });
        }
        let r = &self.record;
        if r.max_bytes == 0 {
            return Err(ConfigError {
                setting: "record-max-bytes",
                problem: "must be at least 1".into(),
            });
        }
        within("record-split-minutes", r.split, s(6.0), s(86_400.0))?;
        if let Some(keep) = r.keep {
            within("record-keep-days", keep, s(3_600.0), s(86_400.0 * 36_500.0))?;
        }
        if let Some(s3) = &r.s3 {
            check_s3(s3)?;
        }
        for name in &r.streams {
            if !crate::live::name::valid_name(name) {
                return Err(ConfigError {
                    setting: "record-stream",
                    problem: format!(
                        "{name:?} is not a stream name (1-64 characters of A-Z a-z 0-9 _ - .)"
                    ),
                });
            }
        }
        if srt.pbkeylen != 0 && srt.passphrase.is_none() {
            return Err(ConfigError {
                setting: "srt-pbkeylen",
                problem: "needs --srt-passphrase".into(),
            });
        }
        Ok(())
    }
}
