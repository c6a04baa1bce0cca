//! `mediamesh serve` and `mediamesh origin`: their settings (flags = TOML keys =
//! `MEDIAMESH_*` variables, see `layers`) and how each role starts.
//!
//! Not here: what the settings do (crates `origin`, `edge`, `p2p`); fleet membership
//! (`fleet_cli`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use origin::{Origin, OriginConfig};
use serde::{Deserialize, Serialize};

use crate::layers::seconds;

/// The library's defaults, which the flags show and fall back to.
fn defaults() -> OriginConfig {
    OriginConfig::new(PathBuf::from("mediamesh-data"))
}

fn s3_defaults() -> origin::record::s3::S3Config {
    origin::record::s3::S3Config::default_for("s3://bucket")
}

fn default_rtmp() -> SocketAddr {
    defaults()
        .rtmp
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1935)))
}

fn secs_default(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Settings of `serve` and `origin` (the `serve`-only ones say so).
#[derive(Args, Debug, Serialize, Deserialize)]
pub struct OriginArgs {
    /// TOML file with any of these settings (keys named like the flags, `-` as `_`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, default_value_t = defaults().http)]
    pub http: SocketAddr,
    /// RTMP listen address.
    #[arg(long, default_value_t = default_rtmp())]
    pub rtmp: SocketAddr,
    /// SRT listen address (UDP), e.g. 127.0.0.1:9000; off unless given. Publish MPEG-TS
    /// to `srt://ADDR?streamid=live/NAME` (or `#!::r=live/NAME,m=publish`).
    #[arg(long, value_name = "ADDR")]
    pub srt: Option<SocketAddr>,
    /// SRT publishers must encrypt with this passphrase (10 to 79 characters).
    #[arg(long)]
    pub srt_passphrase: Option<String>,
    /// SRT key length publishers must use: 16, 24 or 32 (0 takes the publisher's).
    #[arg(long, default_value_t = defaults().srt_settings.pbkeylen)]
    pub srt_pbkeylen: u16,
    /// SRT receiver latency in seconds (the larger of this and the publisher's applies).
    #[arg(long, default_value_t = secs_default(defaults().srt_settings.latency))]
    pub srt_latency: f64,
    /// Seconds a publishing SRT connection may send no audio or video frame.
    #[arg(long, default_value_t = secs_default(defaults().limits.srt_idle_timeout))]
    pub srt_idle_timeout: f64,
    /// Concurrent SRT connections.
    #[arg(long, default_value_t = defaults().limits.max_srt_connections)]
    pub max_srt_connections: usize,
    /// Data folder (signing key).
    #[arg(long, default_value_os_t = defaults().data_dir)]
    pub data: PathBuf,
    /// Folder of MP4 files to serve as VOD under /vod/{name}/.
    #[arg(long)]
    pub media: Option<PathBuf>,
    /// Publish the built-in looping live channel `demo`.
    #[arg(long)]
    pub demo: bool,
    /// Segment target duration in seconds.
    #[arg(long, default_value_t = secs_default(defaults().packaging.segment_target))]
    pub segment_target: f64,
    /// LL-HLS part target in seconds, 0.2 or more.
    #[arg(long, default_value_t = secs_default(defaults().packaging.part_target))]
    pub part_target: f64,
    /// DVR window in seconds.
    #[arg(long, default_value_t = secs_default(defaults().packaging.dvr_window))]
    pub dvr_window: f64,
    /// Seconds a dropped publisher has to come back.
    #[arg(long, default_value_t = secs_default(defaults().packaging.reconnect_grace))]
    pub reconnect_grace: f64,
    /// Longest merged-read wait of RTMP publishers in seconds: fewer wake-ups per
    /// stream; waits end before a part is due; 0 reads at once.
    #[arg(long, default_value_t = secs_default(defaults().packaging.ingest_read_batch))]
    pub ingest_batch: f64,
    /// Publish key for a stream, NAME=KEY (repeatable). Publish with `rtmp://…/live/NAME?key=KEY`
    /// or with KEY as the stream key. In the file: a `[publish_keys]` table of NAME = "KEY".
    #[arg(long = "publish-key", value_name = "NAME=KEY")]
    #[serde(deserialize_with = "list_or_table")]
    pub publish_keys: Vec<String>,
    /// Refuse streams that have no publish key.
    #[arg(long)]
    pub require_keys: bool,
    /// Webhook: URL POSTed (SRS-shaped JSON) before a publish (RTMP, SRT) starts; an
    /// answer other than 2xx with `0` or `{"code":0}` refuses it. See the README's
    /// "Webhooks".
    #[arg(long, value_name = "URL")]
    pub hook_on_publish: Option<String>,
    /// Webhook: URL POSTed when a publish ends.
    #[arg(long, value_name = "URL")]
    pub hook_on_unpublish: Option<String>,
    /// Webhook: URL POSTed when a viewer session of a live stream starts (HLS, DASH at
    /// this origin); a refusal answers the viewer 403.
    #[arg(long, value_name = "URL")]
    pub hook_on_play: Option<String>,
    /// Webhook: URL POSTed when a viewer session ends (idle for --hook-play-idle).
    #[arg(long, value_name = "URL")]
    pub hook_on_stop: Option<String>,
    /// Webhook: URL POSTed when a recording finished and plays as VOD (see the
    /// README's "Recording").
    #[arg(long, value_name = "URL")]
    pub hook_on_record_done: Option<String>,
    /// Seconds without a request after which a viewer session has ended (on_stop).
    #[arg(long, default_value_t = secs_default(defaults().hooks.play_idle))]
    pub hook_play_idle: f64,
    /// Seconds one webhook call may take (connect, request, answer).
    #[arg(long, default_value_t = secs_default(defaults().hooks.timeout))]
    pub hook_timeout: f64,
    /// Further attempts (a second apart) of a notification hook (on_unpublish) that is down.
    #[arg(long, default_value_t = defaults().hooks.retries)]
    pub hook_retries: u32,
    /// Allow publishes while the on_publish hook is down (timeout, 5xx, garbage);
    /// by default they are refused (fail-closed).
    #[arg(long)]
    pub hook_fail_open: bool,
    /// Record every live stream to DATA/recordings; each recording plays as VOD at
    /// /vod/recordings/NAME/index.m3u8 (and index.mpd) and is listed at
    /// /api/v1/recordings. See the README's "Recording".
    #[arg(long)]
    pub record: bool,
    /// Record live stream NAME (repeatable), besides --record; the write API switches
    /// streams on and off at run time.
    #[arg(long = "record-stream", value_name = "NAME")]
    pub record_stream: Vec<String>,
    /// Bytes all recordings together may take; the oldest finished recordings are
    /// deleted to make room, and when none is left recording stops.
    #[arg(long, default_value_t = defaults().record.max_bytes)]
    pub record_max_bytes: u64,
    /// Delete finished recordings older than this many days (fractions allowed)
    /// [default: kept until --record-max-bytes needs their room].
    #[arg(long, value_name = "DAYS")]
    pub record_keep_days: Option<f64>,
    /// A recording that reaches this many minutes finishes (a VOD asset) and the next
    /// one continues the stream.
    #[arg(long, default_value_t = defaults().record.split.as_secs_f64() / 60.0)]
    pub record_split_minutes: f64,
    /// Upload finished recordings to S3-compatible storage at s3://BUCKET/PREFIX
    /// (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). See the
    /// README's "Recording".
    #[arg(long, value_name = "URL")]
    pub s3: Option<String>,
    /// S3 endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000 [default:
    /// AWS, by --s3-region].
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, default_value_t = s3_defaults().region)]
    pub s3_region: String,
    /// Path-style S3 requests (ENDPOINT/BUCKET/KEY), as MinIO and most S3-compatible
    /// servers want, instead of virtual-hosted style (BUCKET.ENDPOINT/KEY).
    #[arg(long)]
    pub s3_path_style: bool,
    /// Files of at least this many bytes are uploaded in parts (multipart upload).
    #[arg(long, default_value_t = s3_defaults().sizing.multipart_bytes)]
    pub s3_multipart_bytes: u64,
    /// Bytes per part of a multipart upload (AWS wants at least 5 MiB).
    #[arg(long, default_value_t = s3_defaults().sizing.part_bytes)]
    pub s3_part_bytes: u64,
    /// Delete a recording's local media as soon as its upload is confirmed (it then
    /// plays from S3); otherwise only --record-max-bytes and --record-keep-days do.
    #[arg(long)]
    pub s3_delete_local: bool,
    /// Upload at most this many bytes per second [default: no limit].
    #[arg(long, value_name = "BYTES")]
    pub s3_upload_rate: Option<u64>,
    /// Seconds one S3 request may take.
    #[arg(long, default_value_t = secs_default(s3_defaults().timeout))]
    pub s3_timeout: f64,
    /// Longest wait, in seconds, between retries of a failed S3 request (the wait
    /// doubles from 0.5 s up to this).
    #[arg(long, default_value_t = secs_default(s3_defaults().retry_max))]
    pub s3_retry_max: f64,
    /// Biggest object the origin reads from S3 to serve a viewer.
    #[arg(long, default_value_t = s3_defaults().max_fetch_bytes)]
    pub s3_max_fetch_bytes: u64,
    /// Bytes of media kept per rendition.
    #[arg(long, default_value_t = defaults().limits.max_rendition_bytes)]
    pub max_rendition_bytes: usize,
    /// Bytes one LL-HLS part may hold before it is cut early [default: a sixteenth of
    /// --max-rendition-bytes, at least 1 MiB].
    #[arg(long)]
    pub max_part_bytes: Option<usize>,
    /// Bytes a segment may grow to while no keyframe comes to cut it; past that the
    /// publisher is dropped [default: a quarter of --max-rendition-bytes, at least 1 MiB].
    #[arg(long)]
    pub max_open_segment_bytes: Option<usize>,
    /// Seconds a publisher may go without a keyframe before it is dropped [default: 4
    /// segment targets, at least 20].
    #[arg(long)]
    pub max_keyframe_interval: Option<f64>,
    /// Video frames in a row whose timestamp does not advance before the publisher is
    /// dropped.
    #[arg(long, default_value_t = defaults().limits.max_frozen_frames)]
    pub max_frozen_frames: usize,
    /// Seconds an RTMP connection has from accept to a successful publish (or play).
    #[arg(long, default_value_t = secs_default(defaults().limits.rtmp_publish_deadline))]
    pub rtmp_publish_deadline: f64,
    /// Seconds a publishing RTMP connection may send no audio or video frame.
    #[arg(long, default_value_t = secs_default(defaults().limits.rtmp_idle_timeout))]
    pub rtmp_idle_timeout: f64,
    /// Concurrent HTTP connections (for `serve`: on the viewers' port).
    #[arg(long, default_value_t = defaults().limits.max_http_connections)]
    pub max_http_connections: usize,
    /// Concurrent RTMP connections.
    #[arg(long, default_value_t = defaults().limits.max_rtmp_connections)]
    pub max_rtmp_connections: usize,
    /// Concurrent RTMP connections from one client address (IPv6 by /64).
    #[arg(long, default_value_t = defaults().limits.max_rtmp_connections_per_ip)]
    pub max_rtmp_connections_per_ip: usize,
    /// Largest HTTP request head in bytes (for `serve`: on the viewers' port).
    #[arg(long, default_value_t = defaults().limits.max_http_header_bytes)]
    pub max_http_header_bytes: usize,
    /// Live streams at once.
    #[arg(long, default_value_t = defaults().limits.max_streams)]
    pub max_streams: usize,
    /// `serve`: partition P2P swarms by region; clients in CIDR only meet peers of
    /// REGION (repeatable).
    #[arg(long = "p2p-region", value_name = "CIDR=REGION")]
    pub p2p_region: Vec<String>,
    /// `serve`: turn P2P off for live stream NAME (the tracker refuses its swarms;
    /// repeatable).
    #[arg(long = "p2p-off", value_name = "NAME")]
    pub p2p_off: Vec<String>,
    /// `serve`: STUN/TURN server for browser viewers, e.g. stun:stun.example.org:3478 or
    /// turn:USER:PASS@turn.example.org:3478 (repeatable; the page reads /api/v1/p2p).
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_server: Vec<String>,
    /// `serve`: announce interval the tracker tells clients, in seconds.
    #[arg(long, default_value_t = secs_default(crate::tracker_cli::defaults().interval))]
    pub tracker_interval: f64,
    /// `serve`: TLS certificate chain (PEM); with --tls-key serves HTTPS and wss:// on --http.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// `serve`: private key (PEM) of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// `serve`: also serve HTTP/3 (QUIC) on UDP at the --http address and port (needs
    /// --tls-cert/--tls-key); TCP answers then advertise it with Alt-Svc.
    #[arg(long)]
    pub http3: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub conn: crate::listen_cli::ConnArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub admin: crate::listen_cli::AdminArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub admin_token: crate::listen_cli::AdminTokenArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub fleet: crate::fleet_cli::FleetArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub whep: crate::whep_cli::WhepArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub whip: crate::whip_cli::WhipArgs,
}

/// `publish_keys` in the file: a table `NAME = "KEY"` (as before) or a list of
/// `"NAME=KEY"` strings (as the flag).
fn list_or_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Keys {
        List(Vec<String>),
        Table(HashMap<String, String>),
    }
    Ok(match Keys::deserialize(d)? {
        Keys::List(l) => l,
        Keys::Table(t) => {
            let mut l: Vec<String> = t.into_iter().map(|(n, k)| format!("{n}={k}")).collect();
            l.sort();
            l
        }
    })
}

/// Older file keys still read.
pub const ALIASES: &[(&str, &str)] = &[("publish_keys", "publish_key")];

/// The origin configuration these settings describe, validated.
pub fn origin_config(args: &OriginArgs) -> Result<OriginConfig> {
    let mut c = OriginConfig::new(args.data.clone());
    c.http = args.http;
    c.rtmp = Some(args.rtmp);
    c.srt = args.srt;
    c.srt_settings.passphrase = args.srt_passphrase.clone();
    c.srt_settings.pbkeylen = args.srt_pbkeylen;
    c.srt_settings.latency = seconds("srt-latency", args.srt_latency, 0.0, 86_400.0)?;
    c.media_dir = args.media.clone();
    c.demo = args.demo;
    let p = &mut c.packaging;
    p.segment_target = seconds("segment-target", args.segment_target, 0.0, 86_400.0)?;
    p.part_target = seconds("part-target", args.part_target, 0.0, 86_400.0)?;
    p.dvr_window = seconds("dvr-window", args.dvr_window, 0.0, 86_400.0 * 365.0)?;
    p.reconnect_grace = seconds("reconnect-grace", args.reconnect_grace, 0.0, 86_400.0)?;
    p.ingest_read_batch = seconds("ingest-batch", args.ingest_batch, 0.0, 86_400.0)?;
    for kv in &args.publish_keys {
        let Some((name, key)) = kv.split_once('=') else {
            bail!("--publish-key wants NAME=KEY, got {kv:?}");
        };
        c.publish_keys.insert(name.to_string(), key.to_string());
    }
    c.require_keys = args.require_keys;
    c.hooks.on_publish = args.hook_on_publish.clone().filter(|u| !u.is_empty());
    c.hooks.on_unpublish = args.hook_on_unpublish.clone().filter(|u| !u.is_empty());
    c.hooks.on_play = args.hook_on_play.clone().filter(|u| !u.is_empty());
    c.hooks.on_stop = args.hook_on_stop.clone().filter(|u| !u.is_empty());
    c.hooks.on_record_done = args.hook_on_record_done.clone().filter(|u| !u.is_empty());
    c.record.all = args.record;
    c.record.streams = args.record_stream.clone();
    c.record.max_bytes = args.record_max_bytes;
    c.record.keep = args
        .record_keep_days
        .map(|d| seconds("record-keep-days", d * 86_400.0, 0.0, 86_400.0 * 36_500.0))
        .transpose()?;
    c.record.split = seconds(
        "record-split-minutes",
        args.record_split_minutes * 60.0,
        0.0,
        86_400.0,
    )?;
    if let Some(url) = args.s3.as_deref().filter(|u| !u.is_empty()) {
        let mut s3 =
            origin::record::s3::S3Config::new(url).map_err(|e| anyhow::anyhow!("--s3: {e}"))?;
        s3.endpoint = args.s3_endpoint.clone().filter(|u| !u.is_empty());
        s3.region = args.s3_region.clone();
        s3.path_style = args.s3_path_style;
        s3.sizing.multipart_bytes = args.s3_multipart_bytes;
        s3.sizing.part_bytes = args.s3_part_bytes;
        s3.delete_local = args.s3_delete_local;
        s3.upload_rate = args.s3_upload_rate;
        s3.timeout = seconds("s3-timeout", args.s3_timeout, 0.0, 86_400.0)?;
        s3.retry_max = seconds("s3-retry-max", args.s3_retry_max, 0.0, 86_400.0)?;
        s3.max_fetch_bytes = args.s3_max_fetch_bytes;
        c.record.s3 = Some(s3);
    }
    c.hooks.play_idle = seconds("hook-play-idle", args.hook_play_idle, 0.0, 86_400.0)?;
    c.hooks.timeout = seconds("hook-timeout", args.hook_timeout, 0.0, 86_400.0)?;
    c.hooks.retries = args.hook_retries;
    c.hooks.fail_open = args.hook_fail_open;
    c.public_metrics = args.admin.admin.is_none();
    let l = &mut c.limits;
    l.max_rendition_bytes = args.max_rendition_bytes;
    l.max_http_connections = args.max_http_connections;
    l.max_rtmp_connections = args.max_rtmp_connections;
    l.max_rtmp_connections_per_ip = args.max_rtmp_connections_per_ip;
    l.max_http_header_bytes = args.max_http_header_bytes;
    l.max_streams = args.max_streams;
    l.max_part_bytes = args.max_part_bytes;
    l.max_open_segment_bytes = args.max_open_segment_bytes;
    l.max_keyframe_interval = args
        .max_keyframe_interval
        .map(|v| seconds("max-keyframe-interval", v, 0.0, 86_400.0))
        .transpose()?;
    l.max_frozen_frames = args.max_frozen_frames;
    l.conn = args.conn.limits()?;
    l.rtmp_publish_deadline = seconds(
        "rtmp-publish-deadline",
        args.rtmp_publish_deadline,
        0.0,
        86_400.0,
    )?;
    l.rtmp_idle_timeout = seconds("rtmp-idle-timeout", args.rtmp_idle_timeout, 0.0, 86_400.0)?;
    l.srt_idle_timeout = seconds("srt-idle-timeout", args.srt_idle_timeout, 0.0, 86_400.0)?;
    l.max_srt_connections = args.max_srt_connections;
    c.whep = args.whep.config()?;
    c.whip = args.whip.config()?;
    c.validate()?;
    Ok(c)
}

/// Runs `mediamesh origin`. The write API (kick, publish keys) is on `--admin` when
/// given, else on the HTTP port; either way behind the admin token. Edges never
/// forward it: they proxy GET and HEAD only and send no `Authorization` upstream.
pub async fn run_origin(args: OriginArgs) -> Result<()> {
    if args.http3 {
        bail!("--http3 is served by the edge: use it on `mediamesh serve` or `mediamesh edge`");
    }
    let mut config = origin_config(&args)?;
    let token = crate::listen_cli::admin_token(&args.admin_token, &args.data)?;
    // The console: on --admin with the write API, else on the HTTP port next to it.
    let console = std::sync::Arc::new(crate::console::Console {
        registry: args.fleet.registry.clone(),
        ..crate::console::Console::new(
            "origin",
            crate::console::Actions {
                kick: true,
                keys: true,
                // In a Redis fleet the trackers follow the origin's P2P switch.
                p2p: args
                    .fleet
                    .registry
                    .as_deref()
                    .is_some_and(|r| r.starts_with("redis")),
                ..Default::default()
            },
        )
    });
    let console_routes = crate::console::routes(console.clone(), token.clone());
    let mut console_routes = Some(console_routes);
    if args.admin.admin.is_none() {
        config.admin_token = Some(token.expose().to_string());
        config.extra_routes = console_routes.take();
    }
    let origin = Origin::start(config).await?;
    let _fleet = crate::fleet_cli::join_origin(&args.fleet, &origin)?;
    let _ = console.streams.set(origin.state.streams.clone());
    if let Some((m, _)) = &_fleet {
        let _ = console.view.set(m.view.clone());
    }
    if args.admin.admin.is_some() {
        let _ = console
            .play_base
            .set(format!("http://{}", origin.http_addr));
    }
    let _sampler =
        crate::console_delivery::spawn(console.delivery.clone(), crate::console::INTERVAL, || {
            crate::console_delivery::from_metrics(&service::metrics::render(), false, false)
        });
    let write_api = args.admin.admin.is_some().then(|| {
        let w = origin::http::admin::routes(origin.state.clone(), token, Default::default());
        match console_routes {
            Some(c) => w.merge(c),
            None => w,
        }
    });
    let _admin = crate::listen_cli::start_admin_with(
        &args.admin,
        std::sync::Arc::new(service::metrics::render),
        write_api,
    )
    .await?;
    crate::ready::listening_ingest(
        "origin",
        origin.http_addr,
        origin.rtmp_addr,
        origin.srt_addr,
        crate::listen_cli::admin_addr(&_admin),
    );
    tracing::info!(
        "streams at http://{}/live/NAME/index.m3u8",
        origin.http_addr
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    drop(origin);
    Ok(())
}

/// Runs `mediamesh serve`: the origin listens on a private loopback port; an edge
/// faces viewers on --http (with every viewer-side limit) and caches, coalesces and
/// holds LL-HLS requests in front of it; the tracker answers on the same port.
pub async fn run_serve(args: OriginArgs) -> Result<()> {
    let mut config = origin_config(&args)?;
    if config.hooks.on_play.is_some() || config.hooks.on_stop.is_some() {
        // Viewers meet the edge here, which keeps no viewer sessions (yet): every
        // playlist fetch would look like a new viewer from 127.0.0.1.
        bail!(
            "--hook-on-play and --hook-on-stop work on `mediamesh origin`, whose viewers \
             reach it directly; in `serve` an edge faces the viewers and does not carry \
             viewer sessions yet (publish hooks work in both)"
        );
    }
    // P2P settings are checked before anything starts listening.
    let tracker_config =
        crate::tracker_cli::tracker_config(&args.p2p_region, args.tracker_interval)?;
    let ice = p2p::signal::ice::parse_all(args.ice_server.iter().map(String::as_str))?;
    let tls = crate::layers::tls_pair(args.tls_cert.clone(), args.tls_key.clone())?;
    let public = config.http;
    config.http = SocketAddr::from(([127, 0, 0, 1], 0));
    let origin = Origin::start(config).await?;
    let mut edge_config =
        edge::config::EdgeConfig::new(vec![format!("http://{}", origin.http_addr)]);
    edge_config.http = public;
    edge_config.cache_mem_bytes = 256 * 1024 * 1024;
    edge_config.tls = tls;
    edge_config.http3 = args.http3;
    // The viewers meet the edge, so the viewer-side limits are the edge's.
    edge_config.limits.max_connections = args.max_http_connections;
    edge_config.limits.max_header_bytes = args.max_http_header_bytes;
    edge_config.limits.conn = args.conn.limits()?;
    edge_config.public_metrics = args.admin.admin.is_none();
    edge_config.validate()?;
    let tracker = p2p::tracker::ws::TrackerService::new(tracker_config);
    let ticker = tracker.spawn_ticker();
    // P2P off per stream: seeded by --p2p-off, switched at run time by the write API.
    let streams = origin.state.streams.clone();
    for name in &args.p2p_off {
        streams
            .set_p2p(name, false)
            .map_err(|e| anyhow::anyhow!("--p2p-off {name}: {e}"))?;
    }
    let changed = streams.p2p_changed();
    let refuser = tokio::spawn(p2p::peer::refuse_streams(
        tracker.clone(),
        format!("http://{}", origin.http_addr),
        move || streams.p2p_off(),
        changed,
    ));
    // The write API: on --admin when given, else on --http (viewers' port) for
    // requests that carry the token.
    let token = crate::listen_cli::admin_token(&args.admin_token, &args.data)?;
    let console = std::sync::Arc::new(crate::console::Console {
        registry: Some(
            args.fleet
                .registry
                .clone()
                .unwrap_or_else(|| "memory".to_string()),
        ),
        has_edge: true,
        has_tracker: true,
        ..crate::console::Console::new(
            "serve",
            crate::console::Actions {
                kick: true,
                keys: true,
                p2p: true,
                drain: false,
            },
        )
    });
    let _ = console.streams.set(origin.state.streams.clone());
    let write_api = origin::http::admin::routes(
        origin.state.clone(),
        token.clone(),
        origin::http::admin::Features { p2p: true },
    )
    .merge(crate::console::routes(console.clone(), token));
    let (local_write_api, admin_write_api) = match args.admin.admin {
        Some(_) => (None, Some(write_api)),
        None => (Some(write_api), None),
    };
    // The player page reads its ICE servers (STUN/TURN) here.
    let page_p2p = p2p::signal::ice::page_config(&ice).to_string();
    let mut prefixes = vec!["/tracker".to_string(), "/api/v1/p2p".to_string()];
    if local_write_api.is_some() {
        prefixes.extend(origin::http::admin::PREFIXES.iter().map(|p| p.to_string()));
        prefixes.extend(crate::console::PREFIXES.iter().map(|p| p.to_string()));
    }
    let mut local_router = tracker.router();
    // WHEP (WebRTC playback) is answered on the viewers' port, not proxied by the edge.
    if let Some(whep) = &origin.whep {
        prefixes.push("/whep/".to_string());
        local_router = local_router.merge(origin::whep::http::routes(whep.clone()));
    }
    // WHIP (WebRTC publish) likewise.
    if let Some(whip) = &origin.whip {
        prefixes.push("/whip/".to_string());
        local_router = local_router.merge(origin::whip::http::routes(whip.clone()));
    }
    let local_router = match local_write_api {
        Some(w) => local_router.merge(w),
        None => local_router,
    };
    let local = edge::server::LocalRoutes {
        prefixes,
        router: local_router.route(
            "/api/v1/p2p",
            axum::routing::get(move || {
                let body = page_p2p.clone();
                async move {
                    (
                        [
                            (axum::http::header::CONTENT_TYPE, "application/json"),
                            (axum::http::header::CACHE_CONTROL, "no-cache"),
                        ],
                        body,
                    )
                }
            }),
        ),
    };
    let edge = edge::server::EdgeServer::start_with(edge_config, Some(local)).await?;
    let _fleet = crate::fleet_cli::join_serve(&args.fleet, &origin, &edge, &tracker)?;
    if let Some(m) = _fleet.0.first() {
        let _ = console.view.set(m.view.clone());
    }
    if args.admin.admin.is_some() {
        let scheme = if args.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let _ = console.play_base.set(format!("{scheme}://{}", edge.addr));
    }
    let sampled = edge.edge.clone();
    let _sampler = crate::console_delivery::spawn(
        console.delivery.clone(),
        crate::console::INTERVAL,
        move || crate::console_delivery::from_metrics(&edge::metrics::render(&sampled), true, true),
    );
    let rated = edge.edge.clone();
    let _ = console.hit_ratio.set(std::sync::Arc::new(move || {
        crate::console::gauge(&edge::metrics::render(&rated), "mediamesh_edge_hit_ratio")
    }));
    let shown = edge.edge.clone();
    let _admin = crate::listen_cli::start_admin_with(
        &args.admin,
        std::sync::Arc::new(move || edge::metrics::render(&shown)),
        admin_write_api,
    )
    .await?;
    crate::ready::listening_ingest(
        "serve",
        edge.addr,
        origin.rtmp_addr,
        origin.srt_addr,
        crate::listen_cli::admin_addr(&_admin),
    );
    tracing::info!(
        "open http://{}/ to watch; streams at http://{}/live/NAME/index.m3u8",
        edge.addr,
        edge.addr
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    ticker.abort();
    refuser.abort();
    drop(edge);
    drop(origin);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(argv: &[&str]) -> Result<OriginConfig> {
        let args: OriginArgs = crate::layers::read(argv, ALIASES)?;
        origin_config(&args)
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "http = \"127.0.0.1:9000\"\npart_target = 0.25\ndemo = true\ndvr_window = 120\n[publish_keys]\ncam = \"s\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let c = origin(&["--config", p, "--http", "127.0.0.1:9100"]).expect("config");
        assert_eq!(c.http.port(), 9100);
        assert_eq!(c.packaging.part_target, Duration::from_millis(250));
        assert_eq!(c.packaging.dvr_window, Duration::from_secs(120));
        assert!(c.demo);
        assert_eq!(c.publish_keys.get("cam").map(String::as_str), Some("s"));
        // Defaults come from the library.
        let c = origin(&[]).expect("defaults");
        let d = defaults();
        assert_eq!(c.packaging.segment_target, d.packaging.segment_target);
        assert_eq!(c.limits.max_streams, d.limits.max_streams);
        assert_eq!(c.http, d.http);
    }

    #[test]
    fn hook_settings_from_file_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "hook_on_publish = \"http://127.0.0.1:8085/api/v1/streams\"\nhook_timeout = 1.5\nhook_fail_open = true\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let c = origin(&["--config", p, "--hook-on-unpublish", "http://h/u"]).expect("config");
        assert_eq!(
            c.hooks.on_publish.as_deref(),
            Some("http://127.0.0.1:8085/api/v1/streams")
        );
        assert_eq!(c.hooks.on_unpublish.as_deref(), Some("http://h/u"));
        assert_eq!(c.hooks.timeout, Duration::from_millis(1500));
        assert!(c.hooks.fail_open);
        let d = origin(&[]).expect("defaults");
        assert!(d.hooks.on_publish.is_none() && !d.hooks.fail_open);
        let e = origin(&["--hook-on-publish", "https://x/"]).expect_err("https");
        assert!(e.to_string().contains("hook-on-publish"), "{e}");
        let e = origin(&["--hook-on-publish", "http://x/", "--hook-timeout", "30"])
            .expect_err("past the publish deadline");
        assert!(e.to_string().contains("hook-timeout"), "{e}");
    }

    #[test]
    fn the_admin_token_is_a_file_key_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "admin_token = \"file-token-0123456789\"\nadmin = \"127.0.0.1:0\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let args: OriginArgs = crate::layers::read(&["--config", p], ALIASES).expect("args");
        assert_eq!(
            args.admin_token.admin_token.as_deref(),
            Some("file-token-0123456789")
        );
        assert!(args.admin.admin.is_some());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let e = origin(&["--part-target", "0.1"]).expect_err("too small");
        assert!(e.to_string().contains("part"), "{e}");
        let e = origin(&["--part-target", "3"]).expect_err("longer than a segment");
        assert!(e.to_string().contains("part"), "{e}");
        let e = origin(&["--dvr-window=-1"]).expect_err("negative");
        assert!(e.to_string().contains("dvr-window"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "no_such_key = 1\n").expect("write");
        assert!(origin(&["--config", path.to_str().expect("utf-8")]).is_err());
    }

    #[test]
    fn record_settings_from_file_and_flags() {
        let d = origin(&[]).expect("defaults");
        assert!(!d.record.all && d.record.streams.is_empty() && d.record.keep.is_none());
        assert_eq!(d.record.split, Duration::from_secs(3600));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "record = true\nrecord_stream = [\"cam\"]\nrecord_max_bytes = 1000000\nrecord_keep_days = 7\nrecord_split_minutes = 30\nhook_on_record_done = \"http://127.0.0.1:1/r\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let c = origin(&["--config", p, "--record-max-bytes", "2000000"]).expect("config");
        assert!(c.record.all);
        assert_eq!(c.record.streams, vec!["cam".to_string()]);
        assert_eq!(c.record.max_bytes, 2_000_000);
        assert_eq!(c.record.keep, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.record.split, Duration::from_secs(1800));
        assert_eq!(
            c.hooks.on_record_done.as_deref(),
            Some("http://127.0.0.1:1/r")
        );
        let e = origin(&["--record-stream", "../etc"]).expect_err("bad name");
        assert!(e.to_string().contains("record-stream"), "{e}");
        let e = origin(&["--record-max-bytes", "0"]).expect_err("zero");
        assert!(e.to_string().contains("record-max-bytes"), "{e}");
    }

    #[test]
    fn s3_settings_from_file_and_flags() {
        assert!(origin(&[]).expect("defaults").record.s3.is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "s3 = \"s3://rec-bucket/a/b/\"\ns3_endpoint = \"http://127.0.0.1:9000\"\ns3_path_style = true\ns3_part_bytes = 5242880\ns3_delete_local = true\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let c = origin(&[
            "--config",
            p,
            "--s3-region",
            "eu-west-1",
            "--s3-upload-rate",
            "1000",
        ])
        .expect("config");
        let s3 = c.record.s3.expect("s3 on");
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("rec-bucket", "a/b")
        );
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, "eu-west-1");
        assert!(s3.path_style && s3.delete_local);
        assert_eq!(s3.sizing.part_bytes, 5 * 1024 * 1024);
        assert_eq!(s3.sizing.multipart_bytes, 8 * 1024 * 1024);
        assert_eq!(s3.upload_rate, Some(1000));
        assert_eq!(s3.url(), "s3://rec-bucket/a/b");
        for (args, flag) in [
            (&["--s3", "http://x/y"][..], "--s3"),
            (&["--s3", "s3://bkt/../x"][..], "--s3"),
            (
                &["--s3", "s3://bkt", "--s3-part-bytes", "10"][..],
                "s3-part-bytes",
            ),
            (
                &["--s3", "s3://bkt", "--s3-endpoint", "ftp://x"][..],
                "s3-endpoint",
            ),
            (&["--s3", "s3://bkt", "--s3-region", "a/b"][..], "s3-region"),
            (&["--s3", "s3://bkt", "--s3-timeout", "0"][..], "s3-timeout"),
        ] {
            let e = origin(args).expect_err("refused");
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn srt_is_off_by_default_and_set_by_flag_or_file() {
        let c = origin(&[]).expect("defaults");
        assert_eq!(c.srt, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "srt = \"127.0.0.1:9000\"\nsrt_passphrase = \"0123456789ab\"\nsrt_latency = 0.3\n",
        )
        .expect("write");
        let c = origin(&["--config", path.to_str().expect("utf-8")]).expect("file");
        assert_eq!(c.srt, Some(SocketAddr::from(([127, 0, 0, 1], 9000))));
        assert_eq!(c.srt_settings.passphrase.as_deref(), Some("0123456789ab"));
        assert_eq!(c.srt_settings.latency, Duration::from_millis(300));
        let e = origin(&["--srt", "127.0.0.1:0", "--srt-passphrase", "short"]).expect_err("short");
        assert!(e.to_string().contains("srt-passphrase"), "{e}");
        let e = origin(&["--srt-pbkeylen", "20"]).expect_err("bad key length");
        assert!(e.to_string().contains("srt-pbkeylen"), "{e}");
    }
}
