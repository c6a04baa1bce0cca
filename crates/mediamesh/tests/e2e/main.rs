//! The end-to-end scenarios of `mediamesh`, one module per area, in ONE test binary:
//! every scenario starts the real `mediamesh` binary (and ffmpeg, Chromium, redis-server
//! or node where it needs them), so linking the whole stack once instead of once per
//! file saves most of the suite's build time.
//!
//! Run them with `bash .ci/run` (or `cargo nextest run --workspace`): nextest runs each
//! test in its own process, the browser and network-namespace scenarios one at a time
//! and the rest in parallel (`.config/nextest.toml`). `cargo test -p mediamesh --test
//! e2e` works too; the browser scenarios then take turns through
//! [`common::browser_turn`]. A single area: `cargo nextest run -E 'test(/^edge::/)'`
//! or `cargo test --test e2e edge::`.

mod common;

mod admin;

mod browser;
mod browser_console;
mod browser_p2p;
mod browser_parts;
mod compute;
mod compute_media;
mod edge;
mod edge_ladder;
mod ertmp;
mod fleet;
mod fleet_control;
mod fleet_deploy;
mod fleet_origin_ha;
mod fleet_steering;
mod fleet_trackers;
mod h3;
mod hooks;
mod hostile;
mod live_rtmp;
mod nat;
mod p2p_parts;
mod peer;
mod peer_wss;
mod recording;
mod recording_s3;
mod security_conn;
mod security_edge;
mod security_origin;
mod srt;
mod tracker;
mod viewers;
mod vod;
mod whep;
mod whip;
